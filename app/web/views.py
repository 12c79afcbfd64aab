"""Server-rendered pages."""
from flask import Blueprint

pages = Blueprint("pages", __name__)

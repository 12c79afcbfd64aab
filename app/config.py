"""Configuration classes read from the environment; secrets come from the environment or instance/."""
from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger("app.config")

SECRET_NAMES = ("SECRET_KEY", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "KEY_ENCRYPTION_KEY",
                "IDEMPOTENCY_HMAC_KEY")


def _env(name: str, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


class Config:
    """Settings shared by every environment; values read from the environment at import."""

    APP_ENV = _env("APP_ENV", "development")
    DATABASE_URL = _env("DATABASE_URL")
    REDIS_URL = _env("REDIS_URL")
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    SECRET_KEY = _env("SECRET_KEY")
    PII_ENCRYPTION_KEY = _env("PII_ENCRYPTION_KEY")
    PII_INDEX_KEY = _env("PII_INDEX_KEY")
    KEY_ENCRYPTION_KEY = _env("KEY_ENCRYPTION_KEY")
    IDEMPOTENCY_HMAC_KEY = _env("IDEMPOTENCY_HMAC_KEY")
    PII_ALGORITHM = _env("PII_ALGORITHM", "AES-256-GCM")
    PLATFORM_CREDIT_CODE = _env("PLATFORM_CREDIT_CODE", "11370000MB28560178")

    WECHAT_APP_ID = _env("WECHAT_APP_ID")
    WECHAT_APP_SECRET = _env("WECHAT_APP_SECRET")
    WECHAT_API_BASE = _env("WECHAT_API_BASE", "https://api.weixin.qq.com")
    WECHAT_MSG_SEC_CHECK = _env("WECHAT_MSG_SEC_CHECK", "0") == "1"
    ALIPAY_APP_ID = _env("ALIPAY_APP_ID")
    ALIPAY_APP_PRIVATE_KEY = _env("ALIPAY_APP_PRIVATE_KEY")
    ALIPAY_PUBLIC_KEY = _env("ALIPAY_PUBLIC_KEY")
    ALIPAY_AES_KEY = _env("ALIPAY_AES_KEY")
    ALIPAY_GATEWAY = _env("ALIPAY_GATEWAY", "https://openapi.alipay.com/gateway.do")

    MINIPROGRAM_HTTP_TIMEOUT = float(_env("MINIPROGRAM_HTTP_TIMEOUT", 5))
    MINIPROGRAM_BIND_TICKET_TTL = int(_env("MINIPROGRAM_BIND_TICKET_TTL", 600))
    WECHAT_SESSION_KEY_TTL = int(_env("WECHAT_SESSION_KEY_TTL", 3 * 24 * 3600))
    WECHAT_OPEN_DATA_MAX_AGE = int(_env("WECHAT_OPEN_DATA_MAX_AGE", 600))
    WECHAT_NOTICE_TEMPLATES = json.loads(_env("WECHAT_NOTICE_TEMPLATES", "{}"))
    ALIPAY_NOTICE_TEMPLATES = json.loads(_env("ALIPAY_NOTICE_TEMPLATES", "{}"))
    OPEN_API_RATE_LIMIT = _env("OPEN_API_RATE_LIMIT", "600/minute")
    OPEN_API_FAILURE_LIMIT = _env("OPEN_API_FAILURE_LIMIT", "60/minute")
    OPEN_API_MAX_SKEW = int(_env("OPEN_API_MAX_SKEW", 300))

    MAX_CONTENT_LENGTH = int(_env("MAX_CONTENT_LENGTH", 256 * 1024))
    ACCESS_TOKEN_TTL = int(_env("ACCESS_TOKEN_TTL", 900))
    REFRESH_TOKEN_TTL = int(_env("REFRESH_TOKEN_TTL", 30 * 24 * 3600))
    AUTH_RATE_LIMIT = _env("AUTH_RATE_LIMIT", "30/minute")
    SEARCH_RATE_LIMIT = _env("SEARCH_RATE_LIMIT", "600/minute")
    VERIFY_RATE_LIMIT = _env("VERIFY_RATE_LIMIT", "600/minute")
    IDEMPOTENCY_WAIT_SECONDS = float(_env("IDEMPOTENCY_WAIT_SECONDS", 10))
    IDEMPOTENCY_LOCK_SECONDS = int(_env("IDEMPOTENCY_LOCK_SECONDS", 60))
    JSON_LOGS = _env("JSON_LOGS", "1") == "1"
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    SQLALCHEMY_ECHO = False

    API_TITLE = "爱山东 政务服务 API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/static/swagger-ui/"
    JSON_SORT_KEYS = False


class DevelopmentConfig(Config):
    """Laptop defaults: SQLite under instance/, generated development secrets."""


class TestConfig(Config):
    """Used by the test suite; databases and stores are passed explicitly by the tests."""

    APP_ENV = "test"
    TESTING = True
    AUTH_RATE_LIMIT = "1000/minute"
    JSON_LOGS = True
    PASSWORD_HASH_PROFILE = "fast"


class ProductionConfig(Config):
    """Production: refuses to start without real secrets."""

    APP_ENV = "production"


CONFIGS = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}


def config_for_env(env: str | None = None) -> type[Config]:
    """Pick the config class named by APP_ENV."""
    return CONFIGS.get(env or _env("APP_ENV", "development"), DevelopmentConfig)


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def ensure_secrets(config: dict, instance_path: str) -> None:
    """Fill missing secrets: generated into instance/ outside production, fatal in production."""
    missing = [name for name in SECRET_NAMES if not config.get(name)]
    if not missing:
        return
    if config.get("APP_ENV") == "production":
        raise RuntimeError("生产环境缺少必需的密钥配置: " + ", ".join(missing))
    path = Path(instance_path) / "dev-secrets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in missing:
        if name not in stored:
            stored[name] = _random_key()
            changed = True
        config[name] = stored[name]
    if changed:
        path.write_text(json.dumps(stored, indent=2))
        os.chmod(path, 0o600)
        logger.warning("generated development secrets in %s (never use them in production)", path)


def refuse_development_secrets(config: dict, instance_path: str) -> None:
    """In production, refuse secrets that are not 32-byte keys or equal the generated development ones."""
    if config.get("APP_ENV") != "production":
        return
    from .security.pii import load_key
    weak = []
    for name in SECRET_NAMES:
        try:
            load_key(config.get(name))
        except ValueError:
            weak.append(name)
    if weak:
        raise RuntimeError("生产环境的密钥应为32字节随机数的base64编码: " + ", ".join(weak))
    path = Path(instance_path) / "dev-secrets.json"
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    reused = [name for name in SECRET_NAMES if stored.get(name) and stored[name] == config.get(name)]
    if reused:
        raise RuntimeError("生产环境不能使用开发密钥: " + ", ".join(reused))

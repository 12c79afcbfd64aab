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
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL") or f"http://127.0.0.1:{_env('PORT', '5000')}"
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
    FILE_STORAGE = _env("FILE_STORAGE", "disk")
    FILE_STORAGE_DIR = _env("FILE_STORAGE_DIR")
    FILE_TEMP_DIR = _env("FILE_TEMP_DIR")
    FILE_MAX_BYTES = int(_env("FILE_MAX_BYTES", 10 * 1024 * 1024))
    FILE_UNATTACHED_TTL = int(_env("FILE_UNATTACHED_TTL", 24 * 3600))
    FILE_UPLOAD_RATE_LIMIT = _env("FILE_UPLOAD_RATE_LIMIT", "120/hour")
    S3_ENDPOINT_URL = _env("S3_ENDPOINT_URL")
    S3_BUCKET = _env("S3_BUCKET")
    S3_ACCESS_KEY_ID = _env("S3_ACCESS_KEY_ID")
    S3_SECRET_ACCESS_KEY = _env("S3_SECRET_ACCESS_KEY")
    S3_REGION = _env("S3_REGION", "us-east-1")
    SEAL_TSA_URL = _env("SEAL_TSA_URL")
    SEAL_TSA_ROOTS = _env("SEAL_TSA_ROOTS")
    SEAL_VERIFY_RATE_LIMIT = _env("SEAL_VERIFY_RATE_LIMIT", "60/minute")
    APPOINTMENT_RATE_LIMIT = _env("APPOINTMENT_RATE_LIMIT", "30/hour")  # bookings per person
    COMPLAINT_RATE_LIMIT = _env("COMPLAINT_RATE_LIMIT", "10/hour")  # complaints per person
    HOTLINE12345_BASE_URL = _env("HOTLINE12345_BASE_URL")  # the provincial 12345 platform (app/complaints/hotline.py)
    HOTLINE12345_APP_ID = _env("HOTLINE12345_APP_ID")
    HOTLINE12345_SECRET = _env("HOTLINE12345_SECRET")
    ACCESS_TOKEN_TTL = int(_env("ACCESS_TOKEN_TTL", 900))
    REFRESH_TOKEN_TTL = int(_env("REFRESH_TOKEN_TTL", 30 * 24 * 3600))
    REFRESH_HOLD_SECONDS = int(_env("REFRESH_HOLD_SECONDS", 24 * 3600))  # a session idle this long leaves the store
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


# Settings whose default lives in the code that reads them; the environment may override them.
OPTIONAL_SETTINGS: dict[str, type | object] = {
    "POPULATION_REGISTRY": str, "LEGAL_ENTITY_REGISTRY": str, "CREDIT_REGISTRY": str, "SMS_SENDER": str,
    "SMS_CODE_TTL": int, "LOGIN_LOCK_SECONDS": int, "WEB_SESSION_MAX_AGE": int,
    "WALLET_STATUS_LIST_SIZE": int, "PLATFORM_ISSUER_NAME": str, "BUNDLE_DEFAULT_COUNTIES": json.loads,
    "CATALOGUE_CHECK_INTERVAL": float, "CATALOGUE_SYNC_INTERVAL": float, "CATALOGUE_STORE_RETRY": float,
    "APPLICATION_MISSING_MATERIAL_DAYS": int, "DOCUMENT_FONT": str,
    "OIDC_ACCESS_TOKEN_TTL": int, "OIDC_REFRESH_TOKEN_TTL": int, "OIDC_ID_TOKEN_TTL": int, "OIDC_CODE_TTL": int,
    "OIDC_SESSION_TTL": int,
    "REDIS_CLUSTER": str, "REDIS_SENTINELS": str, "REDIS_SENTINEL_MASTER": str, "RQ_REDIS_URL": str,  # app/redis_topology.py
    "DATABASE_REPLICA_URL": str, "PARTITION_MONTHS_AHEAD": int, "PARTITION_RETENTION_MONTHS": json.loads,  # app/db_routing.py, app/partitions.py
    "SMS_RATE_LIMIT": str, "SMS_ADDRESS_RATE_LIMIT": str, "REQUIRE_L3_FOR": str, "FACE_CHECK_PROVIDER": str,
    "FACE_CHECK_TTL": int, "FACE_CHECK_MIN_SIMILARITY": float, "FACEID_SECRET_ID": str, "FACEID_SECRET_KEY": str,
    "FACEID_RULE_ID": str, "FACEID_REGION": str, "FACEID_API_BASE": str, "DATA_EXPORT_RATE_LIMIT": str,
    "LICENSE_LIBRARY": str, "LICENSE_LIBRARY_URL": str, "LICENSE_LIBRARY_APP_ID": str, "LICENSE_LIBRARY_SECRET": str,
}
for _name, _convert in OPTIONAL_SETTINGS.items():
    if _env(_name) is not None:
        setattr(Config, _name, _convert(_env(_name)))

# Settings only `create_app(config={...})` sets (the test suite, embedders); never read from the environment.
CODE_ONLY_SETTINGS = ("TESTING", "JOBS_INLINE", "CATALOGUE_SEED_HALLS", "PASSWORD_HASH_PROFILE")


class DevelopmentConfig(Config):
    """Laptop defaults: SQLite under instance/, generated development secrets."""


class TestConfig(Config):
    """Used by the test suite; databases and stores are passed explicitly by the tests."""

    APP_ENV = "test"
    TESTING = True
    AUTH_RATE_LIMIT = "1000/minute"
    SMS_ADDRESS_RATE_LIMIT = "1000/minute"  # every test client is 127.0.0.1
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


# ---- `flask config check`: what production still needs, never showing a secret's value

CHECK_STATES = {"ok": "已设置", "default": "默认值", "off": "未开通", "weak": "需改进", "missing": "缺失"}


def check_for_production(config: dict, instance_path: str, environ=os.environ) -> list[tuple[str, str, str]]:
    """(name, state, note) for the settings that matter in production; state is a CHECK_STATES key."""
    from .security.pii import load_key
    path = Path(instance_path) / "dev-secrets.json"
    generated = json.loads(path.read_text()) if path.exists() else {}
    env = config.get("APP_ENV")
    findings = [("APP_ENV", "ok", "production") if env == "production" else
                ("APP_ENV", "weak", f"当前为 {env}，生产环境应为 production")]
    for name in SECRET_NAMES:
        value = config.get(name)
        if not value:
            findings.append((name, "missing", "未设置"))
        elif generated.get(name) == value:
            findings.append((name, "weak", "使用 instance/dev-secrets.json 中自动生成的开发密钥"))
        else:
            try:
                load_key(value)
                findings.append((name, "ok", "32字节密钥"))
            except ValueError:
                findings.append((name, "weak", "应为32字节随机数的base64编码"))
    backend = (config.get("DATABASE_URL") or "sqlite").split(":", 1)[0].split("+", 1)[0]
    if backend == "postgresql":
        findings.append(("DATABASE_URL", "ok", "PostgreSQL"))
    else:
        findings.append(("DATABASE_URL", "weak", f"{backend}：生产环境应使用 PostgreSQL（SQLite 仅适合单机开发）"))
    findings.append(("REDIS_URL", "ok", "Redis") if config.get("REDIS_URL") else
                    ("REDIS_URL", "weak", "未设置：进程内存储只能服务单个进程，多个 worker 之间不共享限流、一次性码与任务队列"))
    base = str(config.get("PUBLIC_BASE_URL") or "")
    findings.append(("PUBLIC_BASE_URL", "ok" if base.startswith("https://") else "weak",
                     base + ("" if base.startswith("https://") else "：生产环境应为 https 地址")))
    findings += _channel_findings(config, "WECHAT", ("WECHAT_APP_ID", "WECHAT_APP_SECRET"), "WECHAT_API_BASE")
    findings += _channel_findings(config, "ALIPAY", ("ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY",
                                                     "ALIPAY_AES_KEY"), "ALIPAY_GATEWAY")
    storage = str(config.get("FILE_STORAGE") or "disk")
    findings.append(("FILE_STORAGE", "ok", "s3 对象存储") if storage == "s3" else
                    ("FILE_STORAGE", "default", f"{storage}：材料文件存放在本机磁盘，多台服务器时应使用 s3"))
    findings.append(("PROMETHEUS_MULTIPROC_DIR", "ok" if environ.get("PROMETHEUS_MULTIPROC_DIR") else "default",
                     "多进程指标目录" if environ.get("PROMETHEUS_MULTIPROC_DIR") else "未设置：多个 worker 时 /metrics 只反映其中一个"))
    return findings


def _channel_findings(config: dict, channel: str, names: tuple[str, ...], upstream: str) -> list[tuple[str, str, str]]:
    present = [name for name in names if config.get(name)]
    label = "微信小程序" if channel == "WECHAT" else "支付宝小程序"
    if not present:
        return [(names[0], "off", f"{label}未开通（需设置 {'、'.join(names)}）")]
    found = [(name, "ok" if name in present else "missing", "已设置" if name in present else f"{label}需要此项")
             for name in names]
    address = str(config.get(upstream) or "")
    if not address.startswith("https://"):
        found.append((upstream, "weak", f"{address}：不是 https 地址（本地模拟服务？）"))
    return found

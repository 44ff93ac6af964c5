"""tfbot's server configuration: the models (`bot.config.models`) and reading config.yaml (`bot.config.loading`)."""
from bot.config.loading import ENV_OVERRIDES, SECRET_KEYS, ConfigError, SecretResolver, load_config, parse_config
from bot.config.models import (
    APPLY_REQUIREMENTS,
    DEFAULT_WHEN_MODIFIED,
    AdminConfig,
    AwsConfig,
    Config,
    GitHubConfig,
    ProjectConfig,
    RepoConfig,
    S3Config,
    ServerConfig,
    StorageConfig,
    TerraformConfig,
)

__all__ = [
    "APPLY_REQUIREMENTS", "DEFAULT_WHEN_MODIFIED", "ENV_OVERRIDES", "SECRET_KEYS", "AdminConfig", "AwsConfig", "Config",
    "ConfigError", "GitHubConfig", "ProjectConfig", "RepoConfig", "S3Config", "SecretResolver", "ServerConfig",
    "StorageConfig", "TerraformConfig", "load_config", "parse_config",
]

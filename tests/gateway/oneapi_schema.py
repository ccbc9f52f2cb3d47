"""OneAPI's ``users``, ``tokens`` and ``channels`` tables as its ORM (gorm) creates them on MySQL/MariaDB
and SQLite (v0.6 columns), and a handful of rows covering the cases the import maps.
"""

from __future__ import annotations

import time
from typing import Any

MYSQL_TABLES = [
    """CREATE TABLE `users` (
      `id` bigint NOT NULL AUTO_INCREMENT,
      `username` varchar(191) DEFAULT NULL,
      `password` longtext NOT NULL,
      `display_name` varchar(191) DEFAULT NULL,
      `role` bigint DEFAULT 1,
      `status` bigint DEFAULT 1,
      `email` varchar(191) DEFAULT NULL,
      `github_id` varchar(191) DEFAULT NULL,
      `wechat_id` varchar(191) DEFAULT NULL,
      `lark_id` varchar(191) DEFAULT NULL,
      `oidc_id` varchar(191) DEFAULT NULL,
      `access_token` char(32) DEFAULT NULL,
      `quota` bigint DEFAULT 0,
      `used_quota` bigint DEFAULT 0,
      `request_count` bigint DEFAULT 0,
      `group` varchar(32) DEFAULT 'default',
      `aff_code` varchar(32) DEFAULT NULL,
      `inviter_id` bigint DEFAULT NULL,
      PRIMARY KEY (`id`),
      UNIQUE KEY `uni_users_username` (`username`),
      UNIQUE KEY `idx_users_access_token` (`access_token`),
      UNIQUE KEY `idx_users_aff_code` (`aff_code`),
      KEY `idx_users_display_name` (`display_name`),
      KEY `idx_users_email` (`email`),
      KEY `idx_users_inviter_id` (`inviter_id`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `tokens` (
      `id` bigint NOT NULL AUTO_INCREMENT,
      `user_id` bigint DEFAULT NULL,
      `key` char(48) DEFAULT NULL,
      `status` bigint DEFAULT 1,
      `name` varchar(191) DEFAULT NULL,
      `created_time` bigint DEFAULT NULL,
      `accessed_time` bigint DEFAULT NULL,
      `expired_time` bigint DEFAULT -1,
      `remain_quota` bigint DEFAULT 0,
      `unlimited_quota` tinyint(1) DEFAULT 0,
      `used_quota` bigint DEFAULT 0,
      `models` text DEFAULT NULL,
      `subnet` longtext DEFAULT '',
      PRIMARY KEY (`id`),
      UNIQUE KEY `idx_tokens_key` (`key`),
      KEY `idx_tokens_name` (`name`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE `channels` (
      `id` bigint NOT NULL AUTO_INCREMENT,
      `type` bigint DEFAULT 0,
      `key` text DEFAULT NULL,
      `status` bigint DEFAULT 1,
      `name` varchar(191) DEFAULT NULL,
      `weight` bigint unsigned DEFAULT 0,
      `created_time` bigint DEFAULT NULL,
      `test_time` bigint DEFAULT NULL,
      `response_time` bigint DEFAULT NULL,
      `base_url` longtext DEFAULT '',
      `other` longtext DEFAULT NULL,
      `balance` double DEFAULT NULL,
      `balance_updated_time` bigint DEFAULT NULL,
      `models` longtext DEFAULT NULL,
      `group` varchar(32) DEFAULT 'default',
      `used_quota` bigint DEFAULT 0,
      `model_mapping` varchar(1024) DEFAULT '',
      `priority` bigint DEFAULT 0,
      `config` longtext DEFAULT NULL,
      `system_prompt` text DEFAULT NULL,
      PRIMARY KEY (`id`),
      KEY `idx_channels_name` (`name`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
]

SQLITE_TABLES = [
    """CREATE TABLE `users` (`id` integer PRIMARY KEY AUTOINCREMENT, `username` text UNIQUE, `password` text NOT NULL,
      `display_name` text, `role` integer DEFAULT 1, `status` integer DEFAULT 1, `email` text, `github_id` text,
      `wechat_id` text, `access_token` char(32), `quota` integer DEFAULT 0, `used_quota` integer DEFAULT 0,
      `request_count` integer DEFAULT 0, `group` varchar(32) DEFAULT 'default', `aff_code` varchar(32),
      `inviter_id` integer)""",
    """CREATE TABLE `tokens` (`id` integer PRIMARY KEY AUTOINCREMENT, `user_id` integer, `key` char(48),
      `status` integer DEFAULT 1, `name` text, `created_time` integer, `accessed_time` integer,
      `expired_time` integer DEFAULT -1, `remain_quota` integer DEFAULT 0, `unlimited_quota` numeric DEFAULT false,
      `used_quota` integer DEFAULT 0, `models` text, `subnet` text DEFAULT '')""",
    """CREATE TABLE `channels` (`id` integer PRIMARY KEY AUTOINCREMENT, `type` integer DEFAULT 0, `key` text,
      `status` integer DEFAULT 1, `name` text, `weight` integer DEFAULT 0, `created_time` integer,
      `test_time` integer, `response_time` integer, `base_url` text DEFAULT '', `other` text, `balance` real,
      `balance_updated_time` integer, `models` text, `group` varchar(32) DEFAULT 'default',
      `used_quota` integer DEFAULT 0, `model_mapping` varchar(1024) DEFAULT '', `priority` integer DEFAULT 0,
      `config` text, `system_prompt` text)""",
]

BCRYPT_123456 = "$2a$10$Kp2u1SZk3W.zHN1xqKcXQ.3e8dI4E9GHCiOVAY4QbN1o7Q6T3bQ2S"  # shape only
KEY_ALICE = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5kL7nP9rS1tV3"  # 48 characters, as OneAPI makes them
KEY_ROOT_EXPIRED = "Zy8Xw6Vu4Ts2Rq0Po8Nm6Lk4Ji2Hg0Fe8Dc6Ba4Zy2Xw0Vu8"
KEY_DISABLED = "Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0Aa1Ss2Dd3Ff4Gg5Hh6"
KEY_DELETED_USER = "Mm1Nn2Bb3Vv4Cc5Xx6Zz7Ll8Kk9Jj0Hh1Gg2Ff3Dd4Ss5Aa6"
KEY_SUBNET = "Pp9Oo8Ii7Uu6Yy5Tt4Rr3Ee2Ww1Qq0Aa9Ss8Dd7Ff6Gg5Hh4"
KEY_EXHAUSTED = "Ee4Rr5Tt6Yy7Uu8Ii9Oo0Pp1Aa2Ss3Dd4Ff5Gg6Hh7Jj8Kk9"
ACCESS_ALICE = "0123456789abcdef0123456789abcdef"
ACCESS_ROOT = "fedcba9876543210fedcba9876543210"
MODEL = "gpt-4o-mini"


def rows(upstream_host: str) -> dict[str, list[dict[str, Any]]]:
    """OneAPI rows; ``upstream_host`` is an OpenAI-compatible server *without* ``/v1`` (OneAPI adds it)."""
    now = int(time.time())
    return {
        "users": [
            dict(id=1, username="root", password=BCRYPT_123456, display_name="Root User", role=100, status=1,
                 access_token=ACCESS_ROOT, quota=500_000_000, used_quota=1234, request_count=7, group="default",
                 aff_code="r00t"),
            dict(id=2, username="alice", password=BCRYPT_123456, display_name="Alice", role=1, status=1,
                 access_token=ACCESS_ALICE, quota=2_000_000, used_quota=50, request_count=3, group="vip",
                 aff_code="a1ic"),
            dict(id=3, username="bob", password=BCRYPT_123456, display_name="Bob", role=10, status=2,
                 access_token=None, quota=0, used_quota=0, request_count=0, group="default", aff_code="b0b0"),
            dict(id=4, username="carol", password=BCRYPT_123456, display_name="", role=1, status=3,
                 access_token=None, quota=10, used_quota=0, request_count=0, group="default", aff_code="c4r0"),
        ],
        "tokens": [
            dict(id=1, user_id=2, key=KEY_ALICE, status=1, name="alice laptop", created_time=now - 86400,
                 accessed_time=now - 60, expired_time=-1, remain_quota=500_000, unlimited_quota=0, used_quota=10,
                 models=f"{MODEL},gpt-3.5-turbo", subnet=""),
            dict(id=2, user_id=1, key=KEY_ROOT_EXPIRED, status=3, name="old root", created_time=now - 9 * 86400,
                 accessed_time=0, expired_time=now - 86400, remain_quota=0, unlimited_quota=1, used_quota=0,
                 models=None, subnet=None),
            dict(id=3, user_id=2, key=KEY_DISABLED, status=2, name="off", created_time=now, accessed_time=0,
                 expired_time=-1, remain_quota=100, unlimited_quota=0, used_quota=0, models="", subnet=""),
            dict(id=4, user_id=4, key=KEY_DELETED_USER, status=1, name="carol's", created_time=now, accessed_time=0,
                 expired_time=-1, remain_quota=100, unlimited_quota=1, used_quota=0, models="", subnet=""),
            dict(id=5, user_id=2, key=KEY_SUBNET, status=1, name="office only", created_time=now, accessed_time=0,
                 expired_time=now + 86400, remain_quota=0, unlimited_quota=1, used_quota=0, models="",
                 subnet="10.0.0.0/8, 192.168.1.0/24"),
            dict(id=6, user_id=2, key=KEY_EXHAUSTED, status=4, name="spent", created_time=now, accessed_time=0,
                 expired_time=-1, remain_quota=0, unlimited_quota=0, used_quota=999, models="", subnet=""),
        ],
        "channels": [
            dict(id=1, type=1, key="sk-upstream-0", status=1, name="openai main", weight=0, created_time=now,
                 test_time=now - 30, response_time=420, base_url=upstream_host, other="", balance=0,
                 models=f"{MODEL},gpt-3.5-turbo", group="default,vip", used_quota=777,
                 model_mapping='{"gpt-3.5-turbo": "gpt-4o-mini"}', priority=5, config="", system_prompt=None),
            dict(id=2, type=3, key="azure-key-123456", status=2, name="azure east", weight=3, created_time=now,
                 test_time=0, response_time=0, base_url="https://east.openai.azure.com", other="2024-02-01",
                 balance=0, models="gpt-3.5-turbo,gpt-4", group="default", used_quota=0, model_mapping="",
                 priority=0, config="", system_prompt=None),
            dict(id=3, type=15, key="ak|sk", status=1, name="baidu", weight=0, created_time=now, test_time=0,
                 response_time=0, base_url="", other="", balance=0, models="ERNIE-Bot", group="default",
                 used_quota=0, model_mapping="", priority=0, config="", system_prompt=None),
            dict(id=4, type=8, key="sk-aaabbbcccdddeeefffggghhhiiijjjkkk", status=3, name="m3e", weight=0,
                 created_time=now, test_time=0, response_time=0, base_url="http://m3e:6008", other="", balance=0,
                 models="m3e", group="default", used_quota=0, model_mapping="", priority=0, config="",
                 system_prompt="be brief"),
            dict(id=5, type=14, key="sk-ant-xyz", status=1, name="claude", weight=0, created_time=now, test_time=0,
                 response_time=0, base_url="", other="", balance=0, models="claude-3-5-haiku-latest",
                 group="default", used_quota=0, model_mapping="", priority=0, config="", system_prompt=None),
            dict(id=6, type=30, key="", status=1, name="ollama", weight=0, created_time=now, test_time=0,
                 response_time=0, base_url="http://127.0.0.1:11434", other="", balance=0, models="qwen2.5:7b",
                 group="default", used_quota=0, model_mapping="", priority=0, config="", system_prompt=None),
        ],
    }


def insert_statements(data: dict[str, list[dict[str, Any]]], quote: str = "`",
                      placeholder: str = "%s") -> list[tuple[str, tuple[Any, ...]]]:
    statements = []
    for table, items in data.items():
        for item in items:
            columns = ", ".join(f"{quote}{c}{quote}" for c in item)
            marks = ", ".join(placeholder for _ in item)
            statements.append((f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(item.values())))
    return statements

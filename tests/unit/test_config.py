"""csops.yaml: every mistake reported at its line:col with a hint; secrets only from the environment."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from engine.config.config import (
    Config,
    ConfigError,
    HubSpotConfig,
    SalesforceConfig,
    Secret,
    SlackConfig,
    SMTPConfig,
    load_config,
    parse_config,
)
from engine.config.configcheck import SCHEMA_FILE, SECRETS
from engine.config.settings import Settings, config_path
from engine.language.problems import Problem
from tests.conftest import ROOT

SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SLACK_TOKEN = "xoxb-1111-2222-abcdefS3KR1T"
ENV = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "HUBSPOT_TOKEN": "pat-na1-S3KR1T", "SMTP_PASSWORD": "pw-S3KR1T",
       "CSOPS_UNSUBSCRIBE_SECRET": "0123456789abcdef-S3KR1T"}
"""Every secret value holds S3KR1T, so a test can look for any of them in one go."""


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "csops.yaml", ENV if env is None else env)
    assert caught.value.problems, "a ConfigError from a file always carries its problems"
    return caught.value.problems


def where(text: str, env: dict[str, str] | None = None) -> list[tuple[int, int, str, str, str]]:
    return [(p.line, p.col, p.rule, p.message, p.hint) for p in problems(text, env)]


# --- each kind of mistake, at its exact position ---------------------------------------------------

def test_unknown_key_nested_and_at_the_top_with_did_you_mean() -> None:
    text = "chat:\n  kind: slack\n  tokn: ${SLACK_BOT_TOKEN}\nwebhook:\n  allowed_hosts: []\n"
    assert where(text) == [  # no "missing token" besides: the did-you-mean says it
        (3, 3, "unknown-key", 'unknown key "tokn" in chat', 'did you mean "token"?'),
        (4, 1, "unknown-key", 'unknown key "webhook" in the configuration', 'did you mean "webhooks"?'),
    ]


def test_unknown_key_without_a_near_name_lists_what_is_allowed() -> None:
    assert where("store:\n  sqlite: yes\n") == [
        (2, 3, "unknown-key", 'unknown key "sqlite" in store', "allowed here: database_url")]


def test_wrong_type() -> None:
    text = "email:\n  kind: smtp\n  host: mail.example.com\n  port: five\n"
    assert where(text) == [(4, 9, "type", 'port must be a whole number, found text "five"', "")]


def test_out_of_range_and_closed_set() -> None:
    text = "email:\n  kind: smtp\n  host: h\n  port: 70000\n  security: startls\n"
    assert where(text) == [
        (4, 9, "out-of-range", "port must be from 1 to 65535; found 70000", ""),
        (5, 13, "unknown-value", 'security must be one of starttls, tls, none; found text "startls"',
         'did you mean "starttls"?'),
    ]


def test_literal_secret_is_refused_without_repeating_it() -> None:
    text = f"chat:\n  kind: slack\n  token: {SLACK_TOKEN}\n"
    found = problems(text)
    assert [(p.line, p.col, p.rule) for p in found] == [(3, 10, "secret-in-file")]
    assert found[0].message == ("the Slack token is written out in the file; secrets must come from environment "
                                "variables")
    assert found[0].hint == "put the Slack token in an environment variable and write ${SLACK_BOT_TOKEN}"
    assert SLACK_TOKEN not in repr(found)


@pytest.mark.parametrize(("section", "what", "var"), [
    ("crm:\n  kind: hubspot\n  token: {v}\n", "HubSpot token", "HUBSPOT_TOKEN"),
    ("crm:\n  kind: salesforce\n  instance_url: https://x.my.salesforce.com\n  access_token: {v}\n",
     "Salesforce access token", "SALESFORCE_ACCESS_TOKEN"),
    ("crm:\n  kind: salesforce\n  instance_url: https://x.my.salesforce.com\n  client_id: abc\n  client_secret: {v}\n",
     "Salesforce client secret", "SALESFORCE_CLIENT_SECRET"),
    ("email:\n  kind: smtp\n  host: h\n  username: u\n  password: {v}\n", "SMTP password", "SMTP_PASSWORD"),
    ("email:\n  unsubscribe:\n    url: https://x/{{token}}\n    secret: {v}\n", "unsubscribe secret",
     "CSOPS_UNSUBSCRIBE_SECRET"),
    ("temporal:\n  api_key: {v}\n", "Temporal API key", "CSOPS_TEMPORAL_API_KEY"),
])
def test_every_secret_field_refuses_a_literal(section: str, what: str, var: str) -> None:
    for literal in ("s3cr3t-literal-value", "12345678", "pre${X}post"):
        found = problems(section.format(v=literal), {**ENV, "X": "y"})
        assert len(found) == 1 and found[0].rule == "secret-in-file"
        assert found[0].hint == f"put the {what} in an environment variable and write ${{{var}}}"
        assert literal not in found[0].message + found[0].hint


def test_unset_environment_variable_is_named_with_where_it_is_used() -> None:
    text = "chat:\n  kind: slack\n  token: ${SLACK_BOT_TOKEN}\nemail:\n  kind: smtp\n  host: smtp.${MAIL_DOMAIN}\n"
    assert where(text, {}) == [
        (3, 10, "env-var", "environment variable SLACK_BOT_TOKEN is not set (used for the Slack token at chat.token)",
         "set SLACK_BOT_TOKEN where csops runs (the worker and csops check-config)"),
        (6, 14, "env-var", "environment variable MAIL_DOMAIN is not set (used in email.host)",
         "set MAIL_DOMAIN where csops runs, or write the value in the file"),
    ]


def test_empty_secret_variable_is_an_error() -> None:
    assert where("chat:\n  kind: slack\n  token: ${SLACK_BOT_TOKEN}\n", {"SLACK_BOT_TOKEN": " "}) == [
        (3, 10, "env-var", "environment variable SLACK_BOT_TOKEN is empty (used for the Slack token at chat.token)",
         "set SLACK_BOT_TOKEN to the Slack token")]


def test_bad_kind_suggests_the_nearest() -> None:
    assert where("crm:\n  kind: hubspt\n  token: ${HUBSPOT_TOKEN}\n") == [
        (2, 9, "unknown-value", 'crm kind must be one of builtin, hubspot, salesforce, pipedrive; found text "hubspt"',
         'did you mean "hubspot"?')]


def test_missing_kind_with_another_kinds_keys() -> None:
    assert where("chat:\n  token: ${SLACK_BOT_TOKEN}\n") == [
        (1, 1, "missing-key", 'chat is missing "kind" (without it, it is outbox)', "add kind: slack")]


def test_salesforce_needs_exactly_one_way_to_log_in() -> None:
    base = "crm:\n  kind: salesforce\n  instance_url: https://x.my.salesforce.com\n"
    assert [p.message for p in problems(base)] == [
        "crm needs one of: access_token, client_id + client_secret"]
    both = base + "  access_token: ${A}\n  client_id: c\n  client_secret: ${B}\n"
    assert [(p.line, p.col, p.message) for p in problems(both, {"A": "a", "B": "b"})] == [
        (5, 3, 'crm takes only one of access_token, client_id + client_secret; found "access_token" and "client_id"')]
    half = base + "  client_id: c\n"
    assert [(p.line, p.col, p.message) for p in problems(half)] == [
        (4, 3, '"client_id" needs "client_secret" beside it in crm')]


def test_smtp_login_needs_both_halves_and_no_plaintext_password() -> None:
    assert [p.message for p in problems("email:\n  kind: smtp\n  host: h\n  username: u\n")] == [
        '"username" needs "password" beside it in email']
    text = ("email:\n  kind: smtp\n  host: smtp.example.com\n  security: none\n  username: u\n"
            "  password: ${SMTP_PASSWORD}\n")
    assert where(text) == [(4, 13, "insecure-smtp",
                            "security: none would send the SMTP password unencrypted to smtp.example.com",
                            "use security: starttls (port 587) or tls (port 465); none is only for a relay on this "
                            "machine")]
    local = parse_config(text.replace("smtp.example.com", "localhost"), env=ENV).email
    assert isinstance(local, SMTPConfig) and local.port == 25


def test_database_url_password_must_come_from_the_environment() -> None:
    text = "store:\n  database_url: postgresql+psycopg://csops:hunter2@db:5432/csops\n"
    found = problems(text)
    assert [(p.line, p.col, p.rule) for p in found] == [(2, 17, "secret-in-file")]
    assert "hunter2" not in found[0].message + found[0].hint
    ok = parse_config(text.replace("hunter2", "${PGPASSWORD}"), env={"PGPASSWORD": "hunter2"})
    assert ok.store.database_url == "postgresql+psycopg://csops:hunter2@db:5432/csops"
    assert "hunter2" not in repr(ok) and "***" in repr(ok.store)


def test_hosts_networks_and_unsubscribe_links_get_suggestions() -> None:
    text = ('webhooks:\n  allowed_hosts: [https://hooks.example.com/in, "*.com"]\n  allow_private: [bogus]\n'
            'email:\n  unsubscribe:\n    url: https://example.com/u\n    secret: ${CSOPS_UNSUBSCRIBE_SECRET}\n')
    assert where(text) == [
        (2, 19, "schema", '"https://hooks.example.com/in" is not a host name', 'did you mean "hooks.example.com"?'),
        (2, 49, "schema", "a wildcard needs a domain of at least two labels (*.example.com)", ""),
        (3, 19, "schema", '"bogus" is not an address range', "write it in CIDR form: 10.20.0.0/16"),
        (6, 10, "schema", "url must contain {token}, where each recipient's signed token goes",
         "e.g. https://example.com/u/{token}"),
    ]


def test_flow_mapping_with_an_unquoted_variable_gets_a_hint() -> None:
    found = problems("chat: {kind: slack, token: ${SLACK_BOT_TOKEN}}\n")
    assert [p.rule for p in found] == ["yaml-syntax"]
    assert found[0].hint.startswith('inside { } quote the variable: {kind: slack, token: "${SLACK_BOT_TOKEN}"}')


def test_all_problems_are_reported_in_file_order() -> None:
    text = "chat:\n  kind: slak\nfallback_owner: 7\nemail:\n  folder: ${NOPE}\nstore: []\n"
    assert [(p.line, p.col, p.rule) for p in problems(text, {})] == [
        (2, 9, "unknown-value"), (3, 17, "type"), (5, 11, "env-var"), (6, 8, "type")]


def test_not_a_mapping_and_empty_files() -> None:
    assert where("- crm\n") == [(1, 1, "type", "the configuration must be a mapping (key: value lines), found a list",
                                 "start with crm:, email:, chat: or webhooks:")]
    assert parse_config("# only comments\n", env={}) == Config(source="csops.yaml")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read: No such file or directory") as caught:
        load_config(tmp_path / "nope.yaml", {})
    assert caught.value.problems == []


# --- what a good file gives ------------------------------------------------------------------------

def test_variables_are_substituted_and_typed() -> None:
    text = ("email:\n  kind: smtp\n  host: ${SMTP_HOST}\n  port: ${SMTP_PORT}\n  security: tls\n"
            "  username: bot@${DOMAIN}\n  password: ${SMTP_PASSWORD}\n"
            "temporal:\n  tls: ${TLS}\n  address: ${ADDR}\n")
    env = {**ENV, "SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2465", "DOMAIN": "example.com", "TLS": "true",
           "ADDR": "t.example.com:7233"}
    config = parse_config(text, env=env)
    assert isinstance(config.email, SMTPConfig)
    assert (config.email.host, config.email.port, config.email.username) == ("smtp.example.com", 2465,
                                                                             "bot@example.com")
    assert config.email.password is not None and config.email.password.reveal() == "pw-S3KR1T"
    assert config.temporal.tls is True and config.temporal.address == "t.example.com:7233"


def test_defaults_per_kind() -> None:
    config = parse_config("email: {kind: smtp, host: h, security: tls}\ncrm: {kind: hubspot, "
                          'token: "${HUBSPOT_TOKEN}"}\nchat: {kind: slack, token: "${SLACK_BOT_TOKEN}"}\n', env=ENV)
    assert isinstance(config.email, SMTPConfig) and config.email.port == 465
    assert config.email.from_domain == "csops.local" and config.email.marketing_cap.per_recipient == 0
    assert isinstance(config.crm, HubSpotConfig) and config.crm.base_url == "https://api.hubapi.com"
    assert isinstance(config.chat, SlackConfig) and config.chat.token.reveal() == SLACK_TOKEN
    sf = parse_config("crm:\n  kind: salesforce\n  instance_url: https://x.my.salesforce.com\n  client_id: c\n"
                      "  client_secret: ${S}\n", env={"S": "shh"}).crm
    assert isinstance(sf, SalesforceConfig) and sf.access_token is None and sf.api_version == "v61.0"
    assert sf.client_secret is not None and sf.client_secret.reveal() == "shh"


def test_salesforce_cancelled_task_status_defaults_to_completed_and_can_be_set() -> None:
    base = "crm:\n  kind: salesforce\n  instance_url: https://x.my.salesforce.com\n  access_token: ${S}\n"
    default = parse_config(base, env={"S": "t"}).crm
    chosen = parse_config(base + "  cancelled_task_status: Cancelled\n", env={"S": "t"}).crm
    assert isinstance(default, SalesforceConfig) and default.cancelled_task_status == "Completed"
    assert isinstance(chosen, SalesforceConfig) and chosen.cancelled_task_status == "Cancelled"


def test_the_example_file_loads_and_agrees_with_a_plain_schema_validator() -> None:
    text = (ROOT / "csops.example.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "csops.example.yaml", {**ENV, "PGPASSWORD": "pg-S3KR1T"})
    assert config.crm.kind == "hubspot" and config.email.kind == "smtp" and config.chat.kind == "slack"
    assert config.webhooks.allowed_hosts == ("hooks.example.com", "*.example.org")
    assert list(Draft202012Validator(SCHEMA).iter_errors(yaml.safe_load(text))) == []


# --- secrets stay hidden ---------------------------------------------------------------------------

def test_secrets_are_hidden_in_repr_str_and_formatting() -> None:
    text = (ROOT / "csops.example.yaml").read_text(encoding="utf-8")
    config = parse_config(text, env={**ENV, "PGPASSWORD": "pg-S3KR1T"})
    shown = [repr(config), str(config), f"{config}", repr(Settings.from_env(
        {"CSOPS_TEMPORAL_API_KEY": "tk-S3KR1T"}, config))]
    for text_ in shown:
        assert "S3KR1T" not in text_
    as_dict = repr(dataclasses.asdict(config))  # Secret fields stay Secret objects; URLs are plain text there
    assert not any(value in as_dict for value in ENV.values())
    assert "Secret(${SLACK_BOT_TOKEN})" in repr(config)
    assert str(Secret("x")) == "Secret(***)"


def test_a_secret_cannot_be_serialized() -> None:
    secret = Secret("tok-S3KR1T", "SLACK_BOT_TOKEN")
    with pytest.raises(TypeError, match="never serialized"):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"token": secret})
    assert secret.reveal() == "tok-S3KR1T" and secret == Secret("tok-S3KR1T", "SLACK_BOT_TOKEN")


# --- settings: environment over file over defaults -------------------------------------------------

FILE = """\
temporal:
  address: temporal.example.com:7233
  namespace: prod
  task_queue: from-file
  api_key: ${FILE_API_KEY}
  tls: true
home: /var/lib/csops
fallback_owner: file-owner@example.com
webhooks:
  allowed_hosts: [hooks.example.com]
"""


def test_environment_wins_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "csops.yaml"
    path.write_text(FILE, encoding="utf-8")
    file_only = Settings.load({"CSOPS_CONFIG": str(path), "FILE_API_KEY": "k-file"})
    assert (file_only.temporal_address, file_only.namespace, file_only.task_queue) == (
        "temporal.example.com:7233", "prod", "from-file")
    assert (file_only.api_key, file_only.tls, file_only.home) == ("k-file", True, Path("/var/lib/csops"))
    assert file_only.database_url == "sqlite:////var/lib/csops/csops.db"
    assert file_only.mail_outbox == Path("/var/lib/csops/outbox/mail")
    assert file_only.fallback_owner == "file-owner@example.com"
    assert file_only.webhook_hosts == ("hooks.example.com",)
    assert file_only.playbooks == Path("playbooks") and file_only.config_file == str(path)
    env = {"CSOPS_CONFIG": str(path), "FILE_API_KEY": "k-file", "CSOPS_TEMPORAL_ADDRESS": "localhost:7233",
           "CSOPS_TASK_QUEUE": "from-env", "CSOPS_TEMPORAL_TLS": "0", "CSOPS_TEMPORAL_API_KEY": "k-env",
           "CSOPS_HOME": str(tmp_path), "CSOPS_WEBHOOK_HOSTS": "a.example.com, b.example.com",
           "CSOPS_FALLBACK_OWNER": "", "CSOPS_DATABASE_URL": "sqlite:///env.db"}
    both = Settings.load(env)
    assert (both.temporal_address, both.namespace, both.task_queue) == ("localhost:7233", "prod", "from-env")
    assert (both.api_key, both.tls, both.home) == ("k-env", False, tmp_path)
    assert both.database_url == "sqlite:///env.db"
    assert both.webhook_hosts == ("a.example.com", "b.example.com")
    assert both.fallback_owner == "file-owner@example.com"  # an empty variable counts as unset
    defaults = Settings.from_env({})
    assert (defaults.temporal_address, defaults.task_queue, defaults.home) == (
        "localhost:7233", "csops-playbooks", Path(".csops"))
    assert defaults.database_url == "sqlite:///.csops/csops.db" and defaults.config_file == ""


def test_config_file_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_path({}) == ""
    (tmp_path / "csops.yaml").write_text("fallback_owner: here@example.com\n", encoding="utf-8")
    assert config_path({}) == "csops.yaml"
    assert Settings.load({}).fallback_owner == "here@example.com"
    other = tmp_path / "other.yaml"
    other.write_text("fallback_owner: there@example.com\n", encoding="utf-8")
    assert Settings.load({"CSOPS_CONFIG": str(other)}).fallback_owner == "there@example.com"
    with pytest.raises(ConfigError, match=r"CSOPS_CONFIG names .*missing\.yaml, which is not a file"):
        Settings.load({"CSOPS_CONFIG": str(tmp_path / "missing.yaml")})


# --- the schema ------------------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12_and_documented() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].startswith("https://")
    Draft202012Validator.check_schema(SCHEMA)
    nodes = [SCHEMA, *SCHEMA["$defs"].values()]
    props = [(name, sub) for node in nodes for name, sub in node.get("properties", {}).items()]
    assert len(props) > 50
    undocumented = [name for name, sub in props if "description" not in sub]
    assert undocumented == []
    objects = [node for node in nodes if "properties" in node]
    assert all(node.get("additionalProperties") is False for node in objects)


def test_every_secret_field_is_known_to_the_checker() -> None:
    """A secret added to the schema without a message and a suggested variable fails here."""
    def walk(node: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        for name, sub in node.get("properties", {}).items():
            if sub.get("$ref") == "#/$defs/secret":
                found.append((*path, name))
            ref = sub.get("$ref", "").rsplit("/", 1)[-1]
            target = SCHEMA["$defs"].get(ref, sub)
            for branch in [target, *target.get("oneOf", [])]:
                inner = SCHEMA["$defs"].get(branch.get("$ref", "").rsplit("/", 1)[-1], branch)
                found.extend(walk(inner, (*path, name)))
        return found

    assert sorted(set(walk(SCHEMA, ()))) == sorted(SECRETS)


def test_a_calendar_the_engine_cannot_count_with_is_refused_where_it_is_written() -> None:
    text = 'calendar:\n  timezone: Europe/Berlinn\n  holidays: ["2027-01-01", "2027-02-30"]\n'
    assert where(text) == [
        (2, 13, "calendar", "calendar.timezone 'Europe/Berlinn' is not a time zone this machine knows",
         "write an IANA name such as Europe/Berlin or America/New_York"),
        (3, 28, "calendar", "calendar.holidays: '2027-02-30' is not a date", 'write "YYYY-MM-DD"'),
    ]
    assert parse_config('calendar:\n  timezone: Asia/Tokyo\n  holidays: ["2027-01-01"]\n', env={}).calendar.timezone \
        == "Asia/Tokyo"

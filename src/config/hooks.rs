//! `HookConfig`: the failover scripts and the alert channels of one cluster, with the Go
//! project's key names (`failover-pre-script`, `failover-post-script`,
//! `db-servers-state-change-script`, `alert-script`, `mail-*`, `alert-slack-*`,
//! `monitoring-alert-trigger`).

use std::time::Duration;

use super::{ConfigError, Section};

/// Hooks and alert channels of one cluster. Empty strings switch a hook or channel off.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    /// `failover-pre-script`: run on the leader before a failover or switchover changes
    /// anything, with `old_host new_host old_port new_port old_name new_name failover|switchover`
    /// (the Go project's order; the names are empty: no MaxScale here). Unlike the Go project,
    /// a non-zero exit (or passing its deadline) vetoes the operation.
    pub pre_script: String,
    /// `failover-pre-script-timeout` (seconds, default 30): the pre-script's deadline.
    pub pre_script_timeout: Duration,
    /// `failover-post-script`: run after a completed failover or switchover, same arguments.
    pub post_script: String,
    /// `db-servers-state-change-script`: run on every server state change with
    /// `cluster host port new_state old_state`.
    pub state_change_script: String,
    /// `alert-script`: run for every alert with `cluster server previous_state state`.
    pub alert_script: String,
    /// `monitoring-alert-trigger` (default `ERR00027,ERR00042,ERR00087`): the problem codes
    /// whose opening and resolution alert. Server state changes and master changes always do.
    pub alert_trigger: Vec<String>,
    /// `mail-from` (default `mrm@localhost`).
    pub mail_from: String,
    /// `mail-to`: recipients, comma separated (empty: no mail).
    pub mail_to: Vec<String>,
    /// `mail-smtp-addr` (default `localhost:25`): `host:port` of the SMTP relay.
    pub mail_smtp_addr: String,
    /// `mail-smtp-user` / `mail-smtp-password`: SMTP login (empty user: none).
    pub mail_smtp_user: String,
    pub mail_smtp_password: String,
    /// `alert-slack-url`: a webhook receiving every alert as JSON (Slack-compatible fields).
    pub slack_url: String,
    /// `alert-slack-channel` (default `#support`) and `alert-slack-user`: put in the payload.
    pub slack_channel: String,
    pub slack_user: String,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl HookConfig {
    pub(crate) fn from_section(s: &Section<'_>) -> Result<HookConfig, ConfigError> {
        let mail_to = list(&s.str("mail-to")?);
        for to in &mail_to {
            if !to.contains('@') {
                return Err(s.invalid("mail-to", format!("`{to}` is not an e-mail address")));
            }
        }
        let mail_smtp_addr = s.str("mail-smtp-addr")?.trim().to_string();
        if !mail_to.is_empty() && super::HostPort::parse(&mail_smtp_addr).is_none() {
            return Err(s.invalid("mail-smtp-addr", format!("`{mail_smtp_addr}` is not host:port")));
        }
        let slack_url = s.str("alert-slack-url")?.trim().to_string();
        if !slack_url.is_empty() && !(slack_url.starts_with("http://") || slack_url.starts_with("https://")) {
            return Err(s.invalid("alert-slack-url", "expected an http:// or https:// URL"));
        }
        Ok(HookConfig {
            pre_script: s.str("failover-pre-script")?.trim().to_string(),
            pre_script_timeout: Duration::from_secs(s.uint("failover-pre-script-timeout")?.clamp(1, 3600)),
            post_script: s.str("failover-post-script")?.trim().to_string(),
            state_change_script: s.str("db-servers-state-change-script")?.trim().to_string(),
            alert_script: s.str("alert-script")?.trim().to_string(),
            alert_trigger: list(&s.str("monitoring-alert-trigger")?),
            mail_from: s.str("mail-from")?.trim().to_string(),
            mail_to,
            mail_smtp_addr,
            mail_smtp_user: s.str("mail-smtp-user")?.trim().to_string(),
            mail_smtp_password: s.str("mail-smtp-password")?,
            slack_url,
            slack_channel: s.str("alert-slack-channel")?.trim().to_string(),
            slack_user: s.str("alert-slack-user")?.trim().to_string(),
        })
    }

    /// Whether opening or resolving problem `code` alerts (`monitoring-alert-trigger`).
    pub fn triggers(&self, code: &str) -> bool {
        self.alert_trigger.iter().any(|c| c.eq_ignore_ascii_case(code))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml_str(&format!("[c1]\ndb-servers-hosts = \"a\"\n{extra}"), std::path::Path::new("t.toml"), &[])
    }

    #[test]
    fn defaults_follow_the_go_project() {
        let cfg = load("").unwrap();
        let h = &cfg.clusters[0].hooks;
        assert_eq!(h.alert_trigger, vec!["ERR00027", "ERR00042", "ERR00087"]);
        assert!(h.triggers("err00042") && !h.triggers("ERR00012"));
        assert_eq!(h.mail_from, "mrm@localhost");
        assert_eq!(h.mail_smtp_addr, "localhost:25");
        assert_eq!(h.slack_channel, "#support");
        assert!(h.pre_script.is_empty() && h.mail_to.is_empty());
        assert_eq!(h.pre_script_timeout.as_secs(), 30);
        assert_eq!(cfg.clusters[0].masked_json()["mailSmtpPassword"], "*:*");
    }

    #[test]
    fn bad_channels_name_their_key() {
        let err = load("mail-to = \"nobody\"\n").unwrap_err();
        assert!(err.to_string().contains("mail-to"), "{err}");
        let err = load("mail-to = \"ops@example.com\"\nmail-smtp-addr = \"a:b:c\"\n").unwrap_err();
        assert!(err.to_string().contains("mail-smtp-addr"), "{err}");
        let err = load("alert-slack-url = \"hooks.example.com/x\"\n").unwrap_err();
        assert!(err.to_string().contains("alert-slack-url"), "{err}");
        let cfg = load("mail-to = \"a@x.org, b@y.org\"\nmonitoring-alert-trigger = \"ERR00012\"\n").unwrap();
        assert_eq!(cfg.clusters[0].hooks.mail_to.len(), 2);
        assert!(cfg.clusters[0].hooks.triggers("ERR00012"));
    }
}

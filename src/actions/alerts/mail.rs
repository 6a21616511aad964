//! Alert mail through lettre's asynchronous SMTP client: `mail-from` to every `mail-to`
//! through `mail-smtp-addr`, logging in with `mail-smtp-user`/`mail-smtp-password` when set.
//! A loopback relay is spoken to in plain SMTP; any other gets STARTTLS when it offers it
//! (as the Go project's mail client does).

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::cluster::events::ClusterEvent;
use crate::config::{HookConfig, HostPort};

use super::SEND_DEADLINE;

/// The subject and text of the mail for `event`, in the Go project's wording.
pub fn text(cluster: &str, monitor: &str, event: &ClusterEvent) -> (String, String) {
    let subject = format!("Replication-Manager@{monitor} Alert - Cluster {cluster} state change detected");
    let body = match event {
        ClusterEvent::ServerState { server, from, to } => {
            format!("Alert: State changed from {from} to {to}\nMonitor: {monitor}\nCluster: {cluster}\nHost: {server}\n")
        }
        ClusterEvent::Problem { resolved: true, code, desc, server } => format!(
            "Resolved: {code}: {desc}\nMonitor: {monitor}\nCluster: {cluster}\n{}",
            server.as_ref().map(|s| format!("Host: {s}\n")).unwrap_or_default()
        ),
        other => format!("Alert: {}\nMonitor: {monitor}\nCluster: {cluster}\n", other.summary()),
    };
    (subject, body)
}

/// Sends one mail; the error says why, within [`SEND_DEADLINE`].
pub async fn send(hooks: &HookConfig, subject: String, body: String) -> Result<(), String> {
    let relay = HostPort::parse(&hooks.mail_smtp_addr).ok_or_else(|| format!("mail-smtp-addr `{}` is not host:port", hooks.mail_smtp_addr))?;
    let from = hooks.mail_from.parse().map_err(|e| format!("mail-from `{}`: {e}", hooks.mail_from))?;
    let mut message = Message::builder().from(from).subject(subject).header(ContentType::TEXT_PLAIN);
    for to in &hooks.mail_to {
        message = message.to(to.parse().map_err(|e| format!("mail-to `{to}`: {e}"))?);
    }
    let message = message.body(body).map_err(|e| format!("building the mail: {e}"))?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.as_str()).port(relay.port).timeout(Some(SEND_DEADLINE));
    if !relay.is_loopback() {
        let tls = TlsParameters::new(relay.host.clone()).map_err(|e| format!("TLS parameters for {relay}: {e}"))?;
        transport = transport.tls(Tls::Opportunistic(tls));
    }
    if !hooks.mail_smtp_user.is_empty() {
        transport = transport.credentials(Credentials::new(hooks.mail_smtp_user.clone(), hooks.mail_smtp_password.clone()));
    }
    let transport = transport.build();
    match tokio::time::timeout(SEND_DEADLINE, transport.send(message)).await {
        Err(_) => Err(format!("the SMTP relay {relay} did not answer within {SEND_DEADLINE:?}")),
        Ok(Err(e)) => Err(format!("SMTP relay {relay}: {e}")),
        Ok(Ok(_)) => Ok(()),
    }
}

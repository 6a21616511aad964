//! External commands the manager runs (orchestrator hooks, the fence script): through
//! `sh -c`, with a deadline, killed when it passes, the error carrying their output.

use std::time::Duration;

/// Runs `sh -c command` within `deadline`; the error carries its output.
pub async fn run_command(command: &str, deadline: Duration) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(deadline, child).await {
        Err(_) => Err(format!("`{command}` did not finish within {deadline:?}")),
        Ok(Err(e)) => Err(format!("`{command}` could not start: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(Ok(out)) => Err(format!(
            "`{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Sends signal `sig` (`TERM`, `KILL`, ...) to process `pid` with `kill(1)`, within 5 s.
pub async fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let kill = tokio::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).kill_on_drop(true).status();
    match tokio::time::timeout(Duration::from_secs(5), kill).await {
        Err(_) => Err(format!("kill -{sig} {pid} did not finish within 5 s")),
        Ok(Err(e)) => Err(format!("kill -{sig} {pid} could not run: {e}")),
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(format!("kill -{sig} {pid} failed ({st})")),
    }
}

/// `s` quoted as one word for `sh` (single quotes; an inner quote closed, escaped, reopened).
pub fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_run_with_a_deadline_and_quoted_words() {
        assert_eq!(run_command(&format!("echo {}", shell_word("a b'c")), Duration::from_secs(5)).await, Ok("a b'c".to_string()));
        assert!(run_command("exit 3", Duration::from_secs(5)).await.unwrap_err().contains("failed"));
        assert!(run_command("sleep 5", Duration::from_millis(200)).await.unwrap_err().contains("did not finish"));
    }
}

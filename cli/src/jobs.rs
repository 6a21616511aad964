//! Following a long action (backup, reseed, optimize) that answered with a job id: a progress
//! spinner on a terminal, polling `/api/clusters/{c}/jobs` until the job ends.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::{encode, ApiClient, ApiError};
use crate::render;

/// How often the job list is polled.
const POLL: Duration = Duration::from_millis(500);

/// The job id of an action answer like `Job 20260101-120000-backup-logical-ab12 (...) started on h:p`.
pub fn job_id(answer: &str) -> Option<&str> {
    let rest = answer.strip_prefix("Job ")?;
    let id = rest.split_whitespace().next()?;
    (!id.is_empty()).then_some(id)
}

/// How a followed job ended.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("job {id} failed: {error}")]
    Failed { id: String, error: String, job: Value },
    #[error("job {id} still running after {waited} s (it goes on in the manager; see `jobs`)")]
    StillRunning { id: String, waited: u64 },
    #[error("job {id} is not in the job list of cluster {cluster}")]
    Missing { id: String, cluster: String },
}

/// Polls the job until it is `done` (returns it) or `failed`, bounded by `limit`.
pub async fn follow(client: &ApiClient, cluster: &str, id: &str, limit: Duration) -> Result<Value, JobError> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let path = format!("/api/clusters/{}/jobs", encode(cluster));
    let mut missing_polls = 0u32;
    let outcome = loop {
        let jobs = match client.get_json(&path).await {
            Ok(j) => j,
            Err(e) => break Err(JobError::Api(e)),
        };
        let job = jobs.as_array().and_then(|a| a.iter().find(|j| j["id"] == id)).cloned();
        match job {
            None => {
                missing_polls += 1;
                // The list is written when the job starts: a few polls without it mean it is gone.
                if missing_polls >= 10 {
                    break Err(JobError::Missing { id: id.to_string(), cluster: cluster.to_string() });
                }
            }
            Some(job) => {
                let state = job["state"].as_str().unwrap_or("").to_string();
                let size = job["sizeBytes"].as_u64().unwrap_or(0);
                bar.set_message(format!("{} on {}: {state}, {}", render::text(&job["kind"]), render::text(&job["server"]), render::bytes(size)));
                match state.as_str() {
                    "done" => break Ok(job),
                    "failed" => {
                        let error = job["error"].as_str().unwrap_or("no reason given").to_string();
                        break Err(JobError::Failed { id: id.to_string(), error, job });
                    }
                    _ => {}
                }
            }
        }
        if started.elapsed() >= limit {
            break Err(JobError::StillRunning { id: id.to_string(), waited: limit.as_secs() });
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish_and_clear();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_read_from_the_answer() {
        assert_eq!(job_id("Job 20260101-120000-backup-logical-ab12 (BackupLogical) started on 127.0.0.1:3306"), Some("20260101-120000-backup-logical-ab12"));
        assert_eq!(job_id("Maintenance on"), None);
        assert_eq!(job_id("Job "), None);
    }
}

//! `cairn restore` and `cairn backup status`: rebuilding a data directory from a backup target,
//! and what a running server's backup (or a target, read directly) is up to.

use std::path::PathBuf;

use cairn_backup::{Target, TargetConfig};
use clap::{Args, Subcommand};

/// Where a backup is: the target and its S3 settings.
#[derive(Args, Clone, Debug)]
pub(crate) struct TargetArgs {
    /// S3 endpoint for stores other than AWS (default from AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint: Option<String>,
    /// S3 region (default from AWS_REGION, else us-east-1).
    #[arg(long)]
    region: Option<String>,
}

impl TargetArgs {
    fn open(&self, url: &str) -> anyhow::Result<Target> {
        let config = TargetConfig {
            url: url.to_owned(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            ..TargetConfig::default()
        };
        Ok(Target::open(&config)?)
    }
}

#[derive(Subcommand)]
pub(crate) enum BackupCommand {
    /// Each target's lag, last success, last error and newest snapshot: from a running server
    /// (`--url`), or read from a target directly (`--target`).
    Status {
        /// Server URL.
        #[arg(long, env = "CAIRN_URL", default_value = "http://127.0.0.1:8787")]
        url: String,
        /// Bearer token.
        #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Read this target (a directory or s3://bucket/prefix) instead of asking the server.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        s3: TargetArgs,
    },
}

/// `cairn restore --from TARGET --data-dir DIR [--at TIME]`.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub(crate) fn restore(from: &str, data_dir: PathBuf, at: Option<String>, s3: &TargetArgs) -> anyhow::Result<()> {
    let at_ms = match at {
        Some(t) => Some(cairn_api_types::parse_time_ms(&t).ok_or_else(|| {
            anyhow::anyhow!("--at {t:?} is not a time (RFC 3339 such as 2026-11-22T10:00:00Z, or Unix seconds)")
        })?),
        None => None,
    };
    let target = s3.open(from)?;
    let rt = tokio::runtime::Runtime::new()?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let report = rt.block_on(cairn_backup::restore(&target, &data_dir, at_ms, &mut |step, done, total| {
        bar.set_message(step.to_owned());
        bar.set_length(total);
        bar.set_position(done);
    }))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "data_dir": data_dir,
        "snapshot": report.snapshot_id,
        "snapshot_objects": report.snapshot_objects,
        "segments": report.segments,
        "records_replayed": report.records,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "seconds": seconds,
        "mb_per_sec": report.bytes as f64 / 1e6 / seconds.max(1e-9),
        "backed_up_before_ms": report.captured_at_ms,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[allow(clippy::print_stdout)] // The status is the command's output.
pub(crate) fn run(command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Status { url, token, target: Some(t), s3 } => {
            let _ = (url, token);
            let target = s3.open(&t)?;
            let rt = tokio::runtime::Runtime::new()?;
            let (state, snapshots) = rt.block_on(cairn_backup::inspect(&target))?;
            let out = serde_json::json!({
                "target": t,
                "captured_at_ms": state.as_ref().map(|s| s.captured_at_ms),
                "last_success_ms": state.as_ref().map(|s| s.finished_at_ms),
                "segments": state.as_ref().map_or(0, |s| s.segments.len()),
                "snapshots": snapshots.iter().map(|s| serde_json::json!({
                    "id": s.id, "completed_at_ms": s.completed_at_ms, "objects": s.objects, "files": s.files.len(),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        BackupCommand::Status { url, token, target: None, .. } => {
            let rt = tokio::runtime::Runtime::new()?;
            let body = rt.block_on(async {
                let mut req = reqwest::Client::new().get(format!("{}/v1/backup", url.trim_end_matches('/')));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await?;
                let status = res.status();
                let text = res.text().await?;
                if !status.is_success() {
                    anyhow::bail!("the server answered {status}: {text}");
                }
                Ok::<_, anyhow::Error>(text)
            })?;
            let value: serde_json::Value = serde_json::from_str(&body)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
    }
}

//! What every client command shares: one request run on a small async runtime, its result
//! printed on stdout, and an exit code scripts can rely on.

use std::future::Future;
use std::io::Read as _;

use cairn_client::{Client, Error};

/// Exit codes scripts can rely on.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum ExitCode {
    /// Success.
    Ok = 0,
    /// The key (or object, namespace, database) does not exist.
    NotFound = 3,
    /// The server refused the request (4xx): bad input, a limit, authentication.
    Refused = 4,
    /// The server failed (5xx).
    ServerError = 5,
    /// The server could not be reached.
    Unreachable = 6,
}

/// What a command prints.
pub(crate) enum Output {
    /// JSON, one line.
    Json(serde_json::Value),
    /// Text as it is (a table, a SQL dump, a value's bytes).
    Text(String),
    /// Raw bytes to stdout.
    Bytes(Vec<u8>),
    /// Nothing found: "not found" on stderr and exit code 3.
    NotFound,
}

/// A refusal of the command's own arguments (exit code 4).
pub(crate) fn invalid(message: String) -> Error {
    Error::Api { status: 400, code: "cli.invalid_argument".into(), message }
}

/// VALUE, or standard input for `-`.
pub(crate) fn read_value(value: &str) -> Result<Vec<u8>, String> {
    if value == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(buf)
    } else {
        Ok(value.as_bytes().to_vec())
    }
}

/// Runs `command` against the server at `url` and returns the exit code; messages go to
/// stderr, results to stdout.
pub(crate) fn run<F, Fut>(url: &str, token: Option<String>, command: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<Output, Error>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::Unreachable;
        }
    };
    let client = match Client::new(url, token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Refused;
        }
    };
    match runtime.block_on(command(client)) {
        Ok(out) => print(out),
        Err(e) => {
            eprintln!("error: {e}");
            match &e {
                Error::Api { status: 404, .. } => ExitCode::NotFound,
                Error::Api { status, .. } if *status >= 500 => ExitCode::ServerError,
                Error::Api { .. } | Error::InvalidUrl(_) => ExitCode::Refused,
                _ => ExitCode::Unreachable,
            }
        }
    }
}

#[allow(clippy::print_stdout)]
fn print(out: Output) -> ExitCode {
    use std::io::Write as _;
    match out {
        Output::Json(v) => println!("{v}"),
        Output::Text(t) => print!("{t}"),
        Output::Bytes(b) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&b).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::Unreachable;
            }
        }
        Output::NotFound => {
            eprintln!("not found");
            return ExitCode::NotFound;
        }
    }
    ExitCode::Ok
}

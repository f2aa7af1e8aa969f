//! How every example starts and ends: a bad flag or a failure is one line on stderr, never a
//! panic or a page of usage.
use std::fmt::Display;
use std::process::ExitCode;

/// The command line, parsed. `--help` and `--version` print in full and exit 0; a usage error is
/// clap's first paragraph on one line (`error: invalid value '0' for '--batch-size <N>': ...`)
/// and exit status 2, as clap's own.
pub fn parse<A: clap::Parser>() -> Result<A, ExitCode> {
    A::try_parse().map_err(|e| {
        if !e.use_stderr() {
            e.exit();
        }
        let rendered = e.to_string();
        let first: Vec<&str> = rendered.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
        eprintln!("{}", first.join(" "));
        ExitCode::from(2)
    })
}

/// The program's exit: its own code, or `error: <message>` on one line and status 1.
pub fn finish<E: Display>(result: Result<ExitCode, E>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

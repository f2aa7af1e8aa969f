//! Showing a download and an extraction as the examples do: the library reports how far it is
//! ([`DownloadEvent`], and `FetchEvent` in chapter 9) and prints nothing; here that becomes a bar with bytes,
//! rate and ETA on a terminal, or a line every few seconds otherwise (in logs and CI).
#![allow(dead_code)] // each example uses part of it

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use simd_cnn::data::download::DownloadEvent;

/// The state of what is shown.
#[derive(Default)]
pub struct Shown {
    bar: Option<ProgressBar>,
    lines: Option<Lines>,
}

struct Lines {
    name: String,
    total: Option<u64>,
    started: Instant,
    last_line: Instant,
    start: u64,
}

const LINE_EVERY: Duration = Duration::from_secs(10);

impl Shown {
    /// Shows one event of a download.
    pub fn download(&mut self, event: DownloadEvent) {
        match event {
            DownloadEvent::Start { url, dest, start, total } => self.start(url, dest, start, total),
            DownloadEvent::Restart { url } => {
                eprintln!("{url}: the server ignored the resume request; starting again from zero")
            }
            DownloadEvent::Received { received } => self.update(received),
            DownloadEvent::Done { received } => {
                let started = self.lines.as_ref().map(|l| l.started);
                let elapsed = match self.bar.take() {
                    Some(bar) => {
                        bar.finish_and_clear();
                        bar.elapsed()
                    }
                    None => started.map_or(Duration::ZERO, |s| s.elapsed()),
                };
                self.lines = None;
                eprintln!("  received {} in {:.1} s", HumanBytes(received), elapsed.as_secs_f64());
            }
            DownloadEvent::Failed => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
                self.lines = None;
            }
        }
    }

    /// Shows how many photos of an archive are extracted.
    pub fn extracting(&mut self, done: usize, total: usize) {
        if done == 0 {
            self.bar = Some(counter(total, "extracting photos"));
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            if done == total {
                bar.finish_and_clear();
                self.bar = None;
            }
        }
    }

    fn start(&mut self, url: &str, dest: &Path, start: u64, total: Option<u64>) {
        let name = dest.file_name().map_or_else(|| dest.display().to_string(), |n| n.to_string_lossy().into_owned());
        let resuming = if start > 0 { format!(", resuming at {}", HumanBytes(start)) } else { String::new() };
        let size = total.map_or_else(|| "size unknown".to_string(), |t| HumanBytes(t).to_string());
        eprintln!("downloading {url} ({size}{resuming})");
        if std::io::stderr().is_terminal() {
            let style = match total {
                Some(_) => "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                None => "{msg} {spinner} {bytes} {bytes_per_sec}",
            };
            let bar = ProgressBar::new(total.unwrap_or(0)).with_message(name);
            if let Ok(style) = ProgressStyle::with_template(style) {
                bar.set_style(style);
            }
            bar.set_position(start);
            bar.reset_eta();
            self.bar = Some(bar);
        } else {
            let now = Instant::now();
            self.lines = Some(Lines { name, total, started: now, last_line: now, start });
        }
    }

    fn update(&mut self, received: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(received);
        }
        if let Some(Lines { name, total, started, last_line, start }) = &mut self.lines
            && last_line.elapsed() >= LINE_EVERY
        {
            *last_line = Instant::now();
            let rate = (received - *start) as f64 / started.elapsed().as_secs_f64();
            let of = match total {
                Some(t) => format!(" of {} ({:.0} %)", HumanBytes(*t), 100.0 * received as f64 / *t as f64),
                None => String::new(),
            };
            eprintln!("  {name}: {}{of}, {}/s", HumanBytes(received), HumanBytes(rate as u64));
        }
    }
}

/// A bar counting `len` things on standard error, drawn only when that is a terminal.
fn counter(len: usize, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta} left)")
        .expect("the template is valid");
    ProgressBar::new(len as u64).with_style(style).with_message(message)
}

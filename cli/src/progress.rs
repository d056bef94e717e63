//! Progress of long commands (rebuilds, store migrations): a bar with events/s and ETA on a
//! terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Lines { label: &'static str, started: Instant, last: std::cell::Cell<Instant> },
}

impl Progress {
    pub fn new(label: &'static str) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines { label, started: now, last: std::cell::Cell::new(now) }
        }
    }

    pub fn message(&self, what: &'static str) {
        match self {
            Progress::Bar(bar) => bar.set_message(what),
            Progress::Lines { label, .. } => eprintln!("{label}: {what}"),
        }
    }

    pub fn set(&self, position: u64, head: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(head);
                bar.set_position(position);
            }
            Progress::Lines { label, started, last } => {
                if last.get().elapsed() >= Duration::from_secs(2) {
                    last.set(Instant::now());
                    let rate = position as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("{label}: {position}/{head} events, {rate:.0} events/s");
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

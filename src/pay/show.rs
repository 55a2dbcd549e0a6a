//! What `pay` shows while it waits: an `indicatif` spinner with the stage and the
//! elapsed time on a terminal, one line per stage otherwise (logs, CI, pipes).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub(super) struct Progress {
    spinner: Option<ProgressBar>,
    last: Option<String>,
}

impl Progress {
    pub(super) fn new(tty: bool) -> Progress {
        let spinner = tty.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message("sending");
            bar
        });
        Progress {
            spinner,
            last: None,
        }
    }

    /// A new stage (repeats of the same one are shown once).
    pub(super) fn stage(&mut self, name: &str, elapsed: Duration) {
        if self.last.as_deref() == Some(name) {
            return;
        }
        self.last = Some(name.to_string());
        match &self.spinner {
            Some(bar) => bar.set_message(name.replace('_', " ")),
            None => println!("{:6.1}s {name}", elapsed.as_secs_f64()),
        }
    }

    pub(super) fn note(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }
}

//! A progress bar on stderr for long hashing, shown only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Bridges `edgeward_artifact::Progress` to an indicatif bar (hidden when not on a TTY).
pub(crate) struct Bar(ProgressBar);

impl Bar {
    /// A bar labelled `what`, visible only on a terminal.
    pub(crate) fn new(what: &'static str) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(what);
            b
        } else {
            ProgressBar::hidden()
        };
        Bar(bar)
    }
}

impl edgeward_artifact::Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

//! The ring of a plugin's last log lines behind `plugins.logs`, kept the same way by
//! both servers of the command: the hub (its in-process plugins' log events) and a
//! plugin host (its plugins' stdout and stderr). Bounded in lines and in line length.

use std::collections::VecDeque;

use super::plugins::{LogLine, PluginLogs};
use crate::protocol::now_ms;

/// Longest line kept, bytes; the rest is cut (marked with `…`).
pub const MAX_LINE_BYTES: usize = 1024;

/// Lines `plugins.logs` returns when the caller does not say.
pub const DEFAULT_LOG_LINES: usize = 100;

/// The last `capacity` lines of one plugin.
#[derive(Debug)]
pub struct LogRing {
    lines: VecDeque<LogLine>,
    capacity: usize,
    dropped: u64,
}

impl LogRing {
    pub fn new(capacity: usize) -> LogRing {
        LogRing {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds a line, dropping the oldest when full.
    pub fn push(&mut self, stream: &str, line: &str) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(LogLine {
            ts: now_ms(),
            stream: stream.to_string(),
            line: cut(line),
        });
    }

    /// The newest `n` lines (`None`: `DEFAULT_LOG_LINES`), oldest first.
    pub fn tail(&self, id: &str, n: Option<usize>) -> PluginLogs {
        let n = n.unwrap_or(DEFAULT_LOG_LINES).min(self.lines.len());
        PluginLogs {
            id: id.to_string(),
            lines: self
                .lines
                .iter()
                .skip(self.lines.len() - n)
                .cloned()
                .collect(),
            dropped: self.dropped,
        }
    }

    /// The newest `n` lines of `stream`, oldest first.
    pub fn last_of(&self, stream: &str, n: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .lines
            .iter()
            .rev()
            .filter(|l| l.stream == stream)
            .take(n)
            .map(|l| l.line.clone())
            .collect();
        out.reverse();
        out
    }
}

fn cut(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.len() <= MAX_LINE_BYTES {
        return line.to_string();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_and_counts_the_rest() {
        let mut ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(
                if i % 2 == 0 { "stdout" } else { "stderr" },
                &format!("line {i}\n"),
            );
        }
        let tail = ring.tail("p", None);
        let lines: Vec<&str> = tail.lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(lines, ["line 2", "line 3", "line 4"]);
        assert_eq!(tail.dropped, 2);
        assert_eq!(ring.tail("p", Some(1)).lines[0].line, "line 4");
        assert_eq!(ring.last_of("stderr", 5), ["line 3"]);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let mut ring = LogRing::new(1);
        ring.push("stdout", &"é".repeat(MAX_LINE_BYTES));
        let line = &ring.tail("p", None).lines[0].line;
        assert!(line.len() <= MAX_LINE_BYTES + "…".len() && line.ends_with('…'));
    }
}

//! A reader thread in front of a data source: the trainer asks for the next
//! shard before it trains on this one, so reading and decoding overlap the
//! device's work. At most one read is in flight (one shard on the device,
//! one being read: the host holds two shards at most).

use crate::data::{DataSource, Dataset};
use crate::{Error, Result};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// Rows `[start, start + len)`.
type Range = (usize, usize);

pub struct Prefetch {
    ask: Option<Sender<Range>>,
    answers: Receiver<(Range, Result<Dataset>)>,
    in_flight: Option<Range>,
    thread: Option<JoinHandle<()>>,
    describe: String,
}

impl Prefetch {
    /// Starts the reader thread; it owns `source` until the feed is dropped.
    pub fn spawn(mut source: Box<dyn DataSource>) -> Prefetch {
        let describe = source.describe();
        let (ask, requests) = channel::<Range>();
        let (reply, answers) = channel();
        let thread = std::thread::Builder::new()
            .name("tandem-reader".into())
            .spawn(move || {
                for (start, len) in requests {
                    let block = source.read(start, len);
                    if reply.send(((start, len), block)).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Prefetch {
            ask: Some(ask),
            answers,
            in_flight: None,
            thread,
            describe,
        }
    }

    /// Starts reading rows `[start, start + len)` unless a read is in flight.
    pub fn request(&mut self, start: usize, len: usize) {
        if self.in_flight.is_none() {
            if let Some(ask) = &self.ask {
                if ask.send((start, len)).is_ok() {
                    self.in_flight = Some((start, len));
                }
            }
        }
    }

    /// Rows `[start, start + len)`: the read in flight when it is that one,
    /// else a new read (a different read in flight is waited for and dropped).
    pub fn take(&mut self, start: usize, len: usize) -> Result<Dataset> {
        if self.in_flight.is_some_and(|r| r != (start, len)) {
            let _stale = self.receive()?;
        }
        self.request(start, len);
        let (_, block) = self.receive()?;
        block
    }

    fn receive(&mut self) -> Result<(Range, Result<Dataset>)> {
        self.in_flight = None;
        self.answers.recv().map_err(|_| {
            Error::Invalid(format!(
                "{}: the reader thread stopped without an answer",
                self.describe
            ))
        })
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the request channel ends the thread after its current read.
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! A small SSE reader for tests: parses `id:`, `event:`, `data:` and `retry:` lines into events.

use std::time::Duration;

use futures::StreamExt;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> Self {
        SseReader {
            stream: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// Next complete event (comments skipped); `None` when the stream ended or nothing came
    /// within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next())
            .await
            .ok()
            .flatten()
    }

    /// Next event that carries data (skipping the opening `retry:` block).
    pub async fn next_data_within(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, async {
            loop {
                match self.next().await {
                    Some(ev) if ev.data.is_empty() => continue,
                    other => return other,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent::default();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') || line.is_empty() {
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    any = true;
                    match field {
                        "id" => ev.id = Some(value.to_owned()),
                        "event" => ev.event = Some(value.to_owned()),
                        "data" => {
                            if !ev.data.is_empty() {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(value)
                        }
                        "retry" => ev.retry = value.parse().ok(),
                        _ => {}
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

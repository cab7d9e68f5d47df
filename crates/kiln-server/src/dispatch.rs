//! Hands a request to its model's thread and turns the event stream into a response body.
//! Shared by both APIs, which differ only in how they spell each event.

use crate::error::ApiError;
use crate::keep_alive::KeepAlive;
use crate::options::RequestOptions;
use crate::registry::{ModelEntry, Registry};
use crate::worker::{Done, Event, Prompt};
use axum::body::Body;
use futures_util::{Stream, StreamExt};
use kiln_engine::logprobs::TokenLogprob;
use kiln_engine::tools::ToolCall;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// A whole answer: its content, for a reasoning model its thinking, and the tools it called.
#[derive(Debug, Default)]
pub struct Answer {
    pub content: String,
    pub thinking: String,
    /// Each generated token's logprob, when the request asked for them.
    pub logprobs: Vec<TokenLogprob>,
    pub tool_calls: Vec<ToolCall>,
}

/// A request the model thread has started answering.
pub struct Running {
    /// Time spent loading the model for this request (zero when it was loaded already).
    pub load: Duration,
    pub started: Instant,
    first: Event,
    rx: UnboundedReceiver<Event>,
}

/// Queues the request and waits for its first event, so that an error found before any
/// text (a prompt too long for the context, say) still gets a proper HTTP status.
pub async fn start(
    registry: &Registry,
    model: &ModelEntry,
    prompt: Prompt,
    options: RequestOptions,
    keep_alive: Option<KeepAlive>,
    started: Instant,
) -> Result<Running, ApiError> {
    let (worker, load) = registry.worker(model, keep_alive).await?;
    let mut rx = match worker.submit(prompt, options) {
        Ok(rx) => rx,
        Err(e) => {
            registry.forget(model).await;
            return Err(e);
        }
    };
    match rx.recv().await {
        None => {
            registry.forget(model).await;
            Err(ApiError::internal("the model thread stopped"))
        }
        Some(Event::Error(e)) => Err(e),
        Some(first) => Ok(Running { load, started, first, rx }),
    }
}

impl Running {
    /// Waits for the whole answer.
    pub async fn collect(mut self) -> Result<(Answer, Done, Running), ApiError> {
        let mut answer = Answer::default();
        let mut next = Some(std::mem::replace(&mut self.first, Event::Text(String::new())));
        loop {
            let ev = match next.take() {
                Some(ev) => ev,
                None => self.rx.recv().await.unwrap_or_else(stopped),
            };
            match ev {
                Event::Text(t) => answer.content.push_str(&t),
                Event::Thinking(t) => answer.thinking.push_str(&t),
                Event::Logprob(lp) => answer.logprobs.push(lp),
                Event::ToolCall(c) => answer.tool_calls.push(c),
                Event::Done(d) => return Ok((answer, d, self)),
                Event::Error(e) => return Err(e),
            }
        }
    }

    /// A streaming body: `chunk` spells each event; the stream ends after `Done` or `Error`.
    /// Dropping the body (the client left) drops the receiver, which cancels generation.
    pub fn stream(self, chunk: impl FnMut(Event) -> String + Send + 'static) -> Body {
        Body::from_stream(self.chunks(chunk).map(Ok::<_, Infallible>))
    }

    /// The spelled events as a stream, to be merged with others' (several choices).
    pub fn chunks(
        self,
        chunk: impl FnMut(Event) -> String + Send + 'static,
    ) -> impl Stream<Item = String> + Send + 'static {
        let Running { first, rx, .. } = self;
        let state = (Some(first), rx, false, chunk);
        futures_util::stream::unfold(state, |(pending, mut rx, finished, mut chunk)| async move {
            if finished {
                return None;
            }
            let ev = match pending {
                Some(ev) => ev,
                None => rx.recv().await.unwrap_or_else(stopped),
            };
            let last = matches!(ev, Event::Done(_) | Event::Error(_));
            Some((chunk(ev), (None, rx, last, chunk)))
        })
    }
}

/// The event standing for a model thread that ended without finishing the request.
fn stopped() -> Event {
    Event::Error(ApiError::internal("the model thread stopped before finishing the request"))
}

//! Jobs over SQS (`VALINE_QUEUE_URL`), for Lambda, where no process stays up to claim
//! jobs from the store, and for several `valine serve` processes sharing one queue.
//!
//! A job is still a store record: submitting writes it (the same dedup by id, attempts,
//! failed jobs kept for a week) and then sends one message whose body is the job as
//! JSON, with `DelaySeconds` until it is due (at most 15 minutes: a job due later hops,
//! re-sent with the delay left each time it arrives early), the job's trace id as the
//! `trace_id` message attribute and the X-Ray header of the sending work as the
//! `AWSTraceHeader` system attribute.
//!
//! A consumer ([`SqsQueue::handle`]) claims that one record by id and runs it with the
//! same [`Runner`] as the store's worker, so retries keep the same policy: a retryable
//! failure makes the message visible again when its backoff ends and is reported as a
//! failure (Lambda's `batchItemFailures`), a give-up tells the user and deletes it. A
//! duplicate message (SQS delivers at least once) finds the job settled or leased and is
//! dropped or deferred; dispatch markers and locks stay in the store, so nothing is done
//! twice. A message that still fails after five receives goes to the dead-letter queue.
//! See `docs/design.md#jobs-over-sqs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::queue::{JobQueue, QueueError};
use super::runner::{Runner, Step};
use crate::clock::{self, Clock};
use crate::store::{JobRecord, JobState, NewJob, SharedStore};

/// The longest `DelaySeconds` SQS accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest a received message can be hidden (SQS: 12 hours).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a message waits before its next try when the store could not be reached:
/// long enough that an outage of a few minutes does not use up the five receives that
/// send a message to the dead-letter queue.
const STORE_RETRY: Duration = Duration::from_secs(30);
/// How long a message `valine serve` received stays hidden; renewed while its job runs,
/// so after a crash the job comes back within this.
const SERVE_VISIBILITY: Duration = Duration::from_secs(30);
/// SQS long polling: the longest a receive waits for a message.
const LONG_POLL: Duration = Duration::from_secs(20);

/// The message body: the job and its record's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Envelope {
    id: String,
    job: serde_json::Value,
    run_after_ms: i64,
    deadline_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

impl From<&NewJob> for Envelope {
    fn from(job: &NewJob) -> Envelope {
        Envelope {
            id: job.id.clone(),
            job: job.payload.clone(),
            run_after_ms: job.run_after_ms,
            deadline_ms: job.deadline_ms,
            trace_id: job.trace_id.clone(),
        }
    }
}

impl From<&JobRecord> for Envelope {
    fn from(job: &JobRecord) -> Envelope {
        Envelope {
            id: job.id.clone(),
            job: job.payload.clone(),
            run_after_ms: job.run_after_ms,
            deadline_ms: job.deadline_ms,
            trace_id: job.trace_id.clone(),
        }
    }
}

/// One received message, from a Lambda SQS event or a `ReceiveMessage`.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// The `AWSTraceHeader` system attribute: the X-Ray trace of the work that sent it.
    pub trace_header: Option<String>,
}

/// What becomes of a message once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Finished with (the job settled, the message was a duplicate or unreadable, or a
    /// new message carries the job on): delete it.
    Delete,
    /// It comes back when its visibility ends (set to when the job is due again):
    /// report it as a batch item failure.
    Keep,
}

/// What a jobs queue holds (approximate counts, as SQS gives them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepths {
    pub waiting: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// The dead-letter queue's name and how many messages it holds; `None` when the
    /// queue has no redrive policy.
    pub dead_letters: Option<(String, u64)>,
}

pub struct SqsQueue {
    client: Client,
    url: String,
    store: SharedStore,
    clock: Clock,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    pub fn new(client: Client, url: String, store: SharedStore, clock: Clock) -> Arc<SqsQueue> {
        Arc::new(SqsQueue {
            client,
            url,
            store,
            clock,
        })
    }

    /// A queue on `url` with a client from the standard AWS chain
    /// (`AWS_ENDPOINT_URL_SQS` for moto or another local endpoint).
    pub async fn from_env(url: String, store: SharedStore, clock: Clock) -> Arc<SqsQueue> {
        let client = Client::new(&crate::aws::sdk_config().await);
        Self::new(client, url, store, clock)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the queue's attributes once: a queue that does not exist or may not be used
    /// fails start-up instead of the first command, and the connection is open before
    /// the first interaction has to be answered within Discord's deadline.
    pub async fn check(&self) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| self.sdk_error("be read", e))?;
        Ok(())
    }

    /// How many messages the queue holds, and its dead-letter queue (`valine doctor`):
    /// reads only.
    pub async fn depths(&self) -> Result<QueueDepths, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .attribute_names(A::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.sdk_error("be read", e))?;
        let attributes = out.attributes().cloned().unwrap_or_default();
        let count = |name: A| -> u64 {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let waiting = count(A::ApproximateNumberOfMessages);
        let in_flight = count(A::ApproximateNumberOfMessagesNotVisible);
        let delayed = count(A::ApproximateNumberOfMessagesDelayed);
        // `{"deadLetterTargetArn": "arn:aws:sqs:<region>:<account>:<name>", …}`
        let target = attributes
            .get(&A::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned));
        let dead_letters = match target {
            None => None,
            Some(arn) => {
                let mut parts = arn.rsplit(':');
                let name = parts.next().unwrap_or_default().to_owned();
                let account = parts.next().unwrap_or_default().to_owned();
                let url = self
                    .client
                    .get_queue_url()
                    .queue_name(&name)
                    .queue_owner_aws_account_id(account)
                    .send()
                    .await
                    .map_err(|e| self.sdk_error("find its dead-letter queue", e))?
                    .queue_url
                    .unwrap_or_default();
                let out = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .send()
                    .await
                    .map_err(|e| self.sdk_error("read its dead-letter queue", e))?;
                let held = out
                    .attributes()
                    .and_then(|a| a.get(&A::ApproximateNumberOfMessages))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Some((name, held))
            }
        };
        Ok(QueueDepths {
            waiting,
            in_flight,
            delayed,
            dead_letters,
        })
    }

    /// Sends `envelope`, due `delay` from now (capped at [`MAX_DELAY`]: a later job
    /// hops).
    async fn send(&self, envelope: &Envelope, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(envelope).map_err(QueueError::Encode)?;
        let delay = i32::try_from(delay.min(MAX_DELAY).as_secs()).unwrap_or(900);
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay);
        if let Some(trace_id) = &envelope.trace_id {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(trace_id)
                .build()
                .map_err(|e| self.refused("build a message", e))?;
            request = request.message_attributes("trace_id", value);
        }
        if let Some(header) = crate::telemetry::current_xray_header() {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|e| self.refused("build a message", e))?;
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        request
            .send()
            .await
            .map_err(|e| self.sdk_error("send a message", e))?;
        Ok(())
    }

    /// Sends `job`, delayed until its `run_after_ms` as seen at `now_ms`.
    async fn send_due(&self, job: &NewJob, now_ms: i64) -> Result<(), QueueError> {
        let delay = Duration::from_millis(u64::try_from(job.run_after_ms - now_ms).unwrap_or(0));
        self.send(&Envelope::from(job), delay).await
    }

    /// Receives up to `max` messages (at most 10), waiting up to `wait` for the first,
    /// hidden from other consumers for `visibility`.
    pub async fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .message_attribute_names("trace_id")
            .send()
            .await
            .map_err(|e| self.sdk_error("receive messages", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Delivery {
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle,
                body: m.body.unwrap_or_default(),
                trace_header: m
                    .attributes
                    .and_then(|mut a| a.remove(&MessageSystemAttributeName::AwsTraceHeader)),
            })
            .collect())
    }

    /// Deletes a message that was handled (what Lambda's event source does for the
    /// records not reported as failures).
    pub async fn delete(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let Some(receipt) = &delivery.receipt_handle else {
            return Ok(());
        };
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| self.sdk_error("delete a message", e))?;
        Ok(())
    }

    /// Makes the message visible again after `delay`. Best effort: if it fails, the
    /// message comes back when the visibility it had ends.
    pub async fn show_again_in(&self, delivery: &Delivery, delay: Duration) {
        let Some(receipt) = &delivery.receipt_handle else {
            return;
        };
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(delay))
            .send()
            .await;
        if let Err(e) = result {
            let e = self.sdk_error("change a message's visibility", e);
            tracing::warn!(message_id = %delivery.message_id, error.type = e.error_type(), error.message = %e, "message visibility not changed");
        }
    }

    async fn show_again_at(&self, delivery: &Delivery, at_ms: i64) {
        let wait = u64::try_from(at_ms.saturating_sub(self.clock.now_ms())).unwrap_or(0);
        self.show_again_in(delivery, Duration::from_millis(wait))
            .await;
    }

    /// Runs the job `delivery` carries with `runner` (one attempt), inside the X-Ray
    /// trace that sent it, and says what to do with the message.
    pub async fn handle(&self, runner: &Runner, delivery: &Delivery) -> Handled {
        let work = self.handle_untraced(runner, delivery);
        match delivery.trace_header.as_deref() {
            Some(header) => crate::telemetry::with_xray_trace_id(header, work).await,
            None => work.await,
        }
    }

    async fn handle_untraced(&self, runner: &Runner, delivery: &Delivery) -> Handled {
        let envelope: Envelope = match serde_json::from_str(&delivery.body) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Retrying cannot make it readable; keeping it would only fill the
                // dead-letter queue with noise.
                tracing::error!(message_id = %delivery.message_id, error.type = "job_decode", error.message = %e, "malformed job message dropped");
                return Handled::Delete;
            }
        };
        let now = self.clock.now_ms();
        let claimed = self
            .store
            .claim_job_id(&envelope.id, runner.owner(), now, runner.lease_until_ms())
            .await;
        match claimed {
            Ok(Some(record)) => match runner.run(record).await {
                Ok(Step::Retrying { run_after_ms, .. }) => {
                    self.show_again_at(delivery, run_after_ms).await;
                    Handled::Keep
                }
                Ok(_) => Handled::Delete,
                Err(e) => {
                    // The attempt ran but its result was not recorded: the job stays
                    // leased, and the message comes back once the lease has ended.
                    tracing::error!(job_id = %envelope.id, error.type = e.error_type(), error.message = %e, "job result not recorded");
                    self.show_again_in(delivery, runner.settings().lease + STORE_RETRY)
                        .await;
                    Handled::Keep
                }
            },
            Ok(None) => self.not_claimed(delivery, &envelope, now).await,
            Err(e) => {
                tracing::error!(job_id = %envelope.id, error.type = e.error_type(), error.message = %e, "job not claimed: the store is unavailable");
                self.show_again_in(delivery, STORE_RETRY).await;
                Handled::Keep
            }
        }
    }

    /// Why a message's job could not be claimed, and what that means for the message.
    async fn not_claimed(&self, delivery: &Delivery, envelope: &Envelope, now: i64) -> Handled {
        let job = match self.store.get_job(&envelope.id).await {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(job_id = %envelope.id, error.type = e.error_type(), error.message = %e, "job not read: the store is unavailable");
                self.show_again_in(delivery, STORE_RETRY).await;
                return Handled::Keep;
            }
        };
        let Some(job) = job else {
            tracing::warn!(job_id = %envelope.id, "job is no longer in the store; message dropped");
            return Handled::Delete;
        };
        match job.state {
            // SQS delivers at least once: this is a copy of a message already handled.
            JobState::Done | JobState::Failed => {
                tracing::debug!(job_id = %job.id, "job already settled; duplicate message dropped");
                Handled::Delete
            }
            // Due later than one message can be delayed: hop on.
            JobState::Pending if job.run_after_ms > now => {
                let left =
                    Duration::from_millis(u64::try_from(job.run_after_ms - now).unwrap_or(0));
                match self.send(&Envelope::from(&job), left).await {
                    Ok(()) => Handled::Delete,
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error.type = e.error_type(), error.message = %e, "delayed job not re-sent; the message will come back");
                        self.show_again_in(delivery, left.min(MAX_DELAY)).await;
                        Handled::Keep
                    }
                }
            }
            // Another consumer holds it (a duplicate delivered at the same time): look
            // again after its lease, in case that consumer dies.
            JobState::Running => {
                let until = job.lease_until_ms.unwrap_or(now).saturating_add(1000);
                self.show_again_at(delivery, until).await;
                Handled::Keep
            }
            // Due, but another consumer's claim won the race a moment ago.
            JobState::Pending => {
                self.show_again_in(delivery, Duration::from_secs(1)).await;
                Handled::Keep
            }
        }
    }

    /// `valine serve`'s consumer: long-polls the queue and runs up to
    /// `WorkerSettings::concurrency` jobs side by side until `shutdown` turns true; then
    /// gives running jobs the grace period and releases their leases (their messages
    /// come back within [`SERVE_VISIBILITY`]).
    pub async fn consume(self: Arc<Self>, runner: Runner, mut shutdown: watch::Receiver<bool>) {
        let runner = Arc::new(runner);
        let settings = runner.settings().clone();
        let limit = settings.concurrency.max(1);
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = running.try_join_next() {
                log_panic(done);
            }
            if running.len() >= limit {
                tokio::select! {
                    Some(done) = running.join_next() => log_panic(done),
                    _ = shutdown.changed() => break,
                }
                continue;
            }
            let room = i32::try_from(limit - running.len()).unwrap_or(10);
            // A receive cut short by shutdown may have taken messages: they come back
            // when their visibility ends, so nothing is lost.
            let received = tokio::select! {
                received = self.receive(room, LONG_POLL, SERVE_VISIBILITY) => received,
                _ = shutdown.changed() => break,
            };
            match received {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        let (queue, runner) = (Arc::clone(&self), Arc::clone(&runner));
                        running.spawn(async move { queue.handle_hidden(&runner, delivery).await });
                    }
                }
                Err(e) => {
                    tracing::error!(error.type = e.error_type(), error.message = %e, "worker cannot reach the job queue");
                    tokio::select! {
                        _ = tokio::time::sleep(settings.poll.max(Duration::from_secs(1))) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        let finish = async {
            while let Some(done) = running.join_next().await {
                log_panic(done);
            }
        };
        if tokio::time::timeout(settings.shutdown_grace, finish)
            .await
            .is_err()
        {
            tracing::warn!("running jobs did not finish within the grace period; releasing them");
            running.shutdown().await;
        }
        match self.store.release_job_leases(runner.owner()).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error.type = e.error_type(), error.message = %e, "could not release job leases")
            }
        }
    }

    /// Handles a message received by `serve`, keeping it hidden while its job runs,
    /// then deletes it unless it is to come back.
    async fn handle_hidden(&self, runner: &Runner, delivery: Delivery) {
        let work = self.handle(runner, &delivery);
        tokio::pin!(work);
        let renew = SERVE_VISIBILITY / 3;
        let handled = loop {
            tokio::select! {
                handled = &mut work => break handled,
                _ = tokio::time::sleep(renew) => self.show_again_in(&delivery, SERVE_VISIBILITY).await,
            }
        };
        if handled == Handled::Delete
            && let Err(e) = self.delete(&delivery).await
        {
            // The copy that comes back finds its job settled and is dropped then.
            tracing::warn!(message_id = %delivery.message_id, error.type = e.error_type(), error.message = %e, "handled message not deleted");
        }
    }

    fn sdk_error<E>(&self, op: &'static str, err: SdkError<E>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (detail, retryable) = match &err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status();
                let code = service.err().code().unwrap_or("unknown error");
                let message = service.err().message().unwrap_or_default();
                let throttled = code.contains("Throttl") || code == "RequestThrottled";
                (
                    format!("{code} (HTTP {}) {message}", status.as_u16())
                        .trim_end()
                        .to_owned(),
                    status.is_server_error() || status.as_u16() == 429 || throttled,
                )
            }
            SdkError::TimeoutError(_) => ("no answer in time (the SDK retried)".to_owned(), true),
            SdkError::ConstructionFailure(_) => (
                "the request could not be prepared (are AWS credentials and AWS_REGION set?)"
                    .to_owned(),
                false,
            ),
            _ => (
                "the endpoint cannot be reached; check AWS_REGION, AWS_ENDPOINT_URL_SQS and \
                 the network"
                    .to_owned(),
                true,
            ),
        };
        QueueError::Service {
            op,
            queue: self.url.clone(),
            detail,
            retryable,
            source: Box::new(err),
        }
    }

    fn refused(
        &self,
        op: &'static str,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> QueueError {
        QueueError::Service {
            op,
            queue: self.url.clone(),
            detail: err.to_string(),
            retryable: false,
            source: Box::new(err),
        }
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error.type = "worker_panic", error.message = %e, "job task panicked");
    }
}

/// Whole seconds for a visibility timeout, rounded up (a job due in 1.2 s must not come
/// back after 1 s) and capped at SQS's maximum.
fn seconds(d: Duration) -> i32 {
    let millis = clock::duration_ms(d.min(MAX_VISIBILITY));
    i32::try_from((millis + 999) / 1000).unwrap_or(i32::MAX)
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn submit(&self, job: &NewJob, now_ms: i64) -> Result<(), QueueError> {
        self.store.enqueue_job(job, now_ms).await?;
        crate::metrics::jobs_submitted(1);
        // Sent even when the id existed: a second message for one job is harmless (the
        // copy finds the job settled or leased), a missing one would lose it.
        self.send_due(job, now_ms).await
    }

    async fn submitted_elsewhere(&self, jobs: &[NewJob], now_ms: i64) -> Result<(), QueueError> {
        for job in jobs {
            self.send_due(job, now_ms).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::jobs::{Job, JobError, JobHandler, PollRun, WorkerSettings, new_job};
    use crate::store::sqlite::SqliteStore;

    /// Counts attempts; fails (retryably) while `failing` is set.
    #[derive(Default)]
    struct Counting {
        attempts: AtomicU32,
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl JobHandler for Counting {
        async fn execute(&self, _job: &Job) -> Result<(), JobError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(JobError::Store(crate::store::StoreError::Unavailable {
                    op: "test",
                    reason: "down".into(),
                }));
            }
            Ok(())
        }
        async fn gave_up(&self, _job: &Job, _attempts: u32, _error: &str) {}
    }

    struct Setup {
        queue: Arc<SqsQueue>,
        store: SharedStore,
        handler: Arc<Counting>,
        runner: Runner,
    }

    async fn setup() -> Setup {
        let moto = crate::store::dynamodb_local::DynamoDbLocal::moto();
        let client = Client::new(&crate::store::dynamodb_local::sdk_config_for(
            moto.endpoint(),
        ));
        let url = client
            .create_queue()
            .queue_name(format!("valine-unit-{}", uuid::Uuid::new_v4().simple()))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let store: SharedStore = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let handler = Arc::new(Counting::default());
        let runner = Runner::new(
            Arc::clone(&store),
            Arc::clone(&handler) as Arc<dyn JobHandler>,
            WorkerSettings::default(),
            Clock::system(),
            "unit".into(),
        );
        Setup {
            queue: SqsQueue::new(client, url, Arc::clone(&store), Clock::system()),
            store,
            handler,
            runner,
        }
    }

    fn poll_job(seq: u32, now: i64, after: Duration) -> NewJob {
        let job = Job::PollRun(PollRun {
            correlation_id: "vl-0123456789abcdef".into(),
            run_id: 7,
            seq,
        });
        let mut record = new_job(&job, Some("trace-1"), now, Duration::from_secs(900)).unwrap();
        record.run_after_ms = now + clock::duration_ms(after);
        record.deadline_ms = record.deadline_ms.max(record.run_after_ms);
        record
    }

    fn delivery_of(job: &NewJob) -> Delivery {
        Delivery {
            message_id: format!("m-{}", job.id),
            receipt_handle: None,
            body: serde_json::to_string(&Envelope::from(job)).unwrap(),
            trace_header: None,
        }
    }

    async fn delayed(queue: &SqsQueue) -> (u32, u32) {
        let out = queue
            .client
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            )
            .send()
            .await
            .unwrap();
        let attributes = out.attributes.unwrap_or_default();
        let count = |name| {
            attributes
                .get(&name)
                .and_then(|v: &String| v.parse().ok())
                .unwrap_or(0)
        };
        (
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        )
    }

    #[tokio::test]
    async fn a_due_job_runs_once_and_copies_are_dropped() {
        let s = setup().await;
        let now = s.queue.clock.now_ms();
        let job = poll_job(0, now, Duration::ZERO);
        s.queue.submit(&job, now).await.unwrap();
        let received = s
            .queue
            .receive(10, Duration::from_secs(2), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(received.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(body["id"], job.id.as_str());
        assert_eq!(body["trace_id"], "trace-1");
        assert_eq!(
            s.queue.handle(&s.runner, &received[0]).await,
            Handled::Delete
        );
        assert_eq!(s.handler.attempts.load(Ordering::SeqCst), 1);
        assert_eq!(
            s.store.get_job(&job.id).await.unwrap().unwrap().state,
            JobState::Done
        );
        // At-least-once: a copy finds the job done and is dropped without running it.
        assert_eq!(
            s.queue.handle(&s.runner, &received[0]).await,
            Handled::Delete
        );
        assert_eq!(s.handler.attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_job_due_past_fifteen_minutes_hops() {
        let s = setup().await;
        let now = s.queue.clock.now_ms();
        let job = poll_job(1, now, Duration::from_secs(2_000));
        s.queue.submit(&job, now).await.unwrap();
        assert_eq!(
            delayed(&s.queue).await,
            (0, 1),
            "sent with the longest delay"
        );
        // It arrives after 900 s, still early: sent on with the delay left, not run.
        assert_eq!(
            s.queue.handle(&s.runner, &delivery_of(&job)).await,
            Handled::Delete
        );
        assert_eq!(s.handler.attempts.load(Ordering::SeqCst), 0);
        assert_eq!(delayed(&s.queue).await, (0, 2));
        assert_eq!(
            s.store.get_job(&job.id).await.unwrap().unwrap().state,
            JobState::Pending
        );
    }

    #[tokio::test]
    async fn a_retryable_failure_keeps_the_message_and_an_unreadable_one_is_dropped() {
        let s = setup().await;
        let now = s.queue.clock.now_ms();
        let job = poll_job(2, now, Duration::ZERO);
        s.store.enqueue_job(&job, now).await.unwrap();
        s.handler.failing.store(true, Ordering::SeqCst);
        assert_eq!(
            s.queue.handle(&s.runner, &delivery_of(&job)).await,
            Handled::Keep
        );
        let record = s.store.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Pending);
        assert_eq!(record.attempts, 1);
        assert!(record.run_after_ms > now, "due again after the backoff");

        let garbage = Delivery {
            message_id: "m-garbage".into(),
            body: "{not json".into(),
            ..Delivery::default()
        };
        assert_eq!(s.queue.handle(&s.runner, &garbage).await, Handled::Delete);
    }

    #[test]
    fn visibility_seconds_round_up_and_cap() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(1_200)), 2);
        assert_eq!(seconds(Duration::from_secs(15)), 15);
        assert_eq!(seconds(Duration::from_secs(24 * 3600)), 43_200);
    }

    #[test]
    fn envelope_is_the_job_with_its_schedule() {
        let job = NewJob {
            id: "j1".into(),
            payload: serde_json::json!({"kind": "poll_run", "correlation_id": "c", "run_id": 1, "seq": 0}),
            run_after_ms: 10,
            deadline_ms: 20,
            trace_id: Some("t1".into()),
        };
        let body = serde_json::to_value(Envelope::from(&job)).unwrap();
        assert_eq!(body["id"], "j1");
        assert_eq!(body["job"]["kind"], "poll_run");
        assert_eq!(body["run_after_ms"], 10);
        assert_eq!(body["trace_id"], "t1");
        let back: Envelope = serde_json::from_value(body).unwrap();
        assert_eq!(back, Envelope::from(&job));
    }
}

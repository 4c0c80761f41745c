import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** The name the SMS provider's rate, circuit and metrics go by in place of a check's (a hyphen: never a check's name). */
export const SMS_PROVIDER = 'sms-provider'

/**
 * Every metric Sabt exposes, named in this one file (Prometheus conventions: `sabt_…_total` for
 * counters, `…_seconds` for durations). One registry per runtime, so tests can run several.
 */
export class Metrics {
  readonly registry = new Registry()

  // HTTP (gateway, status)
  readonly httpRequests = new Counter({
    name: 'sabt_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  })
  readonly httpDuration = new Histogram({
    name: 'sabt_http_request_duration_seconds',
    help: 'HTTP request latency, by route and status code',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  // Intake (gateway)
  readonly intakeAccepted = new Counter({
    name: 'sabt_intake_accepted_total',
    help: 'Registrations answered 202 (publisher-confirmed into the intake queue)',
    labelNames: ['campaign'] as const,
    registers: [this.registry],
  })
  readonly intakeRejected = new Counter({
    name: 'sabt_intake_rejected_total',
    help: 'Registrations refused for bad input (4xx), by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  })
  readonly intakeShed = new Counter({
    name: 'sabt_intake_shed_total',
    help: 'Registrations answered 503 because the broker could not confirm them, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })

  /** Group commit at the intake: registrations per intake message, and messages confirmed. */
  readonly intakeBatchSize = new Histogram({
    name: 'sabt_intake_batch_size',
    help: 'Registrations per intake message the gateway published (group commit: all of them answered by one confirm)',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
    registers: [this.registry],
  })
  readonly intakeMessages = new Counter({
    name: 'sabt_intake_messages_confirmed_total',
    help: 'Intake messages the broker confirmed; sabt_intake_accepted_total divided by this is registrations per confirm',
    registers: [this.registry],
  })

  // Broker
  readonly publishConfirms = new Counter({
    name: 'sabt_publish_confirms_total',
    help: 'Publishes settled, by publisher and result (ack, nack, returned, timeout, closed, unavailable…)',
    labelNames: ['publisher', 'result'] as const,
    registers: [this.registry],
  })
  readonly publishBackpressure = new Counter({
    name: 'sabt_publish_backpressure_total',
    help: 'Publishes that filled the channel write buffer (publish() returned false)',
    labelNames: ['publisher'] as const,
    registers: [this.registry],
  })
  /** Publishers register how to read their in-flight count; read at scrape time, not per publish. */
  readonly inFlightSources = new Map<string, () => number>()
  readonly publishInFlight = new Gauge({
    name: 'sabt_publish_in_flight',
    help: 'Publishes waiting for a broker confirm',
    labelNames: ['publisher'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [name, read] of this.inFlightSources) this.publishInFlight.set({ publisher: name }, read())
    },
  })
  readonly queueDepth = new Gauge({
    name: 'sabt_queue_depth',
    help: 'Messages ready in a queue, as last sampled from RabbitMQ by the status role',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  })
  readonly queueConsumers = new Gauge({
    name: 'sabt_queue_consumers',
    help: 'Consumers attached to a queue, as last sampled from RabbitMQ by the status role',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  })
  readonly statsSnapshots = new Counter({
    name: 'sabt_stats_snapshots_total',
    help: 'Stats snapshots this process published to (sent) or took from (received) the stats exchange, or skipped',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  })

  // Recorder
  readonly batchSize = new Histogram({
    name: 'sabt_recorder_batch_size',
    help: 'Intake messages per written batch',
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000],
    registers: [this.registry],
  })
  readonly flushSeconds = new Histogram({
    name: 'sabt_recorder_flush_seconds',
    help: 'Time to write a batch (insert, duplicates, check publishes confirmed)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })
  readonly flushes = new Counter({
    name: 'sabt_recorder_flushes_total',
    help: 'Batches flushed, by what triggered the flush (size, time, shutdown)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })
  readonly rowsWritten = new Counter({
    name: 'sabt_recorder_rows_written_total',
    help: 'Intake messages written, by kind (registration, duplicate, waiting, redelivered)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })
  readonly intakeDeadLettered = new Counter({
    name: 'sabt_recorder_dead_lettered_total',
    help: 'Intake messages sent to the intake dead-letter queue, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })
  readonly recorderRetries = new Counter({
    name: 'sabt_recorder_retries_total',
    help: 'Batch writes retried because PostgreSQL or RabbitMQ was unavailable',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  })

  // Checks
  readonly checks = new Counter({
    name: 'sabt_checks_total',
    help: 'Checks finished, by check and outcome (passed, failed, error)',
    labelNames: ['check', 'outcome'] as const,
    registers: [this.registry],
  })
  readonly rejectionReasons = new Counter({
    name: 'sabt_check_rejections_total',
    help: 'Checks answered "no", by campaign, check and the provider\'s reason code (never its text)',
    labelNames: ['campaign', 'check', 'reason'] as const,
    registers: [this.registry],
  })
  readonly oauthTokenFetches = new Counter({
    name: 'sabt_oauth_token_fetches_total',
    help: 'OAuth2 client-credentials tokens fetched, by token endpoint host',
    labelNames: ['host'] as const,
    registers: [this.registry],
  })
  readonly checkAttempts = new Counter({
    name: 'sabt_check_attempts_total',
    help: 'Calls to providers, by check and result class (passed, failed, retryable, permanent, rate_limited, timeout)',
    labelNames: ['check', 'result'] as const,
    registers: [this.registry],
  })
  readonly providerLatency = new Histogram({
    name: 'sabt_provider_latency_seconds',
    help: 'Provider call latency, by check',
    labelNames: ['check'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  })
  readonly checkRetries = new Counter({
    name: 'sabt_check_retries_total',
    help: 'Check messages parked in a delay tier, by check, tier and reason (retry, circuit_open, rate_limited)',
    labelNames: ['check', 'tier', 'reason'] as const,
    registers: [this.registry],
  })
  readonly deadLetters = new Counter({
    name: 'sabt_dead_letters_total',
    help: 'Records booked as dead letters (after their last attempt, or dead-lettered by RabbitMQ itself), by check and route (checker, broker)',
    labelNames: ['check', 'route'] as const,
    registers: [this.registry],
  })
  readonly checksHeld = new Counter({
    name: 'sabt_checks_held_total',
    help: "Records held, not decided, because this process's configuration does not know their campaign or the check (they wait in a delay tier), by check, campaign and reason",
    labelNames: ['check', 'campaign', 'reason'] as const,
    registers: [this.registry],
  })
  readonly callbacksSwept = new Counter({
    name: 'sabt_callbacks_swept_total',
    help: 'Pending verdict callbacks sent again by the sweeper (their message was lost or late)',
    registers: [this.registry],
  })
  readonly citizenMessages = new Counter({
    name: 'sabt_citizen_messages_total',
    help: 'SMS to citizens by kind (receipt, verdict, allocation, promotion, otp) and result (sent, skipped, rate_limited, transient, permanent, circuit_open)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  })
  readonly citizenMessagesSwept = new Counter({
    name: 'sabt_citizen_messages_swept_total',
    help: 'Owed SMS to citizens published by the outbox sweeper, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })
  readonly circuitState = new Gauge({
    name: 'sabt_circuit_state',
    help: 'Circuit breaker state per check: 0 closed, 1 half-open, 2 open',
    labelNames: ['check'] as const,
    registers: [this.registry],
  })
  readonly rateLimitPerSecond = new Gauge({
    name: 'sabt_provider_rate_limit_per_second',
    help: 'The configured rate limit of the provider behind each check',
    labelNames: ['check'] as const,
    registers: [this.registry],
  })
  readonly campaignPlaces = new Gauge({
    name: 'sabt_campaign_places',
    help: 'A scarce campaign (decision 019), read from PostgreSQL by the status role: capacity, accepted, unsettled, winners, waitlisted, released',
    labelNames: ['campaign', 'kind'] as const,
    registers: [this.registry],
  })
  readonly drawState = new Gauge({
    name: 'sabt_draw_state',
    help: "A lottery's draw: 0 not committed, 1 committed (seed fixed, only its SHA-256 shown), 2 drawn and revealed",
    labelNames: ['campaign'] as const,
    registers: [this.registry],
  })
  readonly drawSeconds = new Gauge({
    name: 'sabt_draw_seconds',
    help: "How long a lottery's draw took (ranking and writing every participant), read from PostgreSQL by the status role",
    labelNames: ['campaign'] as const,
    registers: [this.registry],
  })
  readonly watermarkLag = new Gauge({
    name: 'sabt_intake_watermark_lag_seconds',
    help: 'How far behind now the intake watermark is (decision 022): first_come places received after it are not final yet',
    registers: [this.registry],
  })
  readonly watermarkRounds = new Counter({
    name: 'sabt_intake_watermark_rounds_total',
    help: "A recorder's tries to move the intake watermark, by outcome (advanced, or why not: queued, dead_letters, broker, heartbeats)",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })
  readonly allocationsFinal = new Counter({
    name: 'sabt_allocations_final_total',
    help: 'first_come records whose place became final, each owed its callback and allocation message once',
    labelNames: ['campaign'] as const,
    registers: [this.registry],
  })
  readonly allocationAnswers = new Counter({
    name: 'sabt_allocation_answers_total',
    help: 'Status answers of scarce campaigns, by allocation (won, waitlisted, released, not_drawn, pending)',
    labelNames: ['allocation'] as const,
    registers: [this.registry],
  })

  /**
   * What every process publishes once a second on the stats exchange for the status role's
   * dashboard (src/observability/snapshots.ts): read from this registry at snapshot time, so the
   * per-request path does nothing more than it already does.
   */
  get snapshotMetrics() {
    return [
      this.httpRequests,
      this.intakeAccepted,
      this.intakeRejected,
      this.intakeShed,
      this.intakeBatchSize,
      this.intakeMessages,
      this.publishConfirms,
      this.publishInFlight,
      this.rowsWritten,
      this.flushes,
      this.intakeDeadLettered,
      this.checks,
      this.checkAttempts,
      this.providerLatency,
      this.checkRetries,
      this.deadLetters,
      this.checksHeld,
      this.circuitState,
      this.rateLimitPerSecond,
      this.citizenMessages,
      this.watermarkRounds,
      this.allocationsFinal,
    ] as const
  }

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'sabt_' })
  }
}

/** A metric's name, read from the metric itself (so names stay written once, above). */
export function nameOf(metric: { get(): Promise<unknown> }): string {
  return (metric as unknown as { name: string }).name
}

// client — TallyClient: send() requests, call() and await their result on a
// reply topic, and results() for result consumers, on kafkajs.
import kafkajs from 'kafkajs';
import type { Consumer, KafkaConfig, KafkaMessage, Producer } from 'kafkajs';
import { buildRequest, type ForbiddenTopics, type WireMessage } from './envelope.js';
import { TallyResultError, TallyTimeoutError } from './errors.js';
import type { JobType, Requests } from './generated/jobs.js';
import { Handoff, RecentKeys } from './handoff.js';
import { parseResult, resultKey, TallyMalformedResultError } from './result.js';
import type { CallOptions, OkResult, SendOptions, TallyResult } from './types.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

export interface TallyClientOptions {
  /** Bootstrap servers, `host:port` each (or one comma-separated string, as KAFKA_BOOTSTRAP_SERVERS). */
  brokers: string[] | string;
  /** Kafka client id; default `tally-client`. */
  clientId?: string;
  /** The worker's topics (CONTRACT.md §1); defaults as there. */
  requestTopic?: string;
  resultTopic?: string;
  auditTopic?: string;
  dlqTopic?: string;
  /** Where call() asks for its results; default `tally.replies`. Not one of the worker's own topics. */
  replyTopic?: string;
  /** call()'s default timeout; default 30 000 ms. */
  callTimeoutMs?: number;
  /** Extra kafkajs settings (ssl, sasl, connectionTimeout, …); brokers and clientId above win. */
  kafka?: Partial<KafkaConfig>;
  /** Consumer timings for call() and results(); defaults: session 30 000 ms, heartbeat 3 000 ms, maxWaitTime 100 ms. */
  consumer?: { sessionTimeout?: number; heartbeatInterval?: number; maxWaitTimeInMs?: number };
}

export interface ResultsOptions {
  /** The consumer group: replicas of one service share it, and its committed offsets. */
  groupId: string;
  /** Default: the client's resultTopic. */
  topic?: string;
  /** Where a group without committed offsets starts; default false (only new results). */
  fromBeginning?: boolean;
  /** How many recent (account_id, id) keys are remembered to drop repeats; default 50 000. */
  dedupeWindow?: number;
  /** Called for a message that is not a result; it is skipped and its offset committed. */
  onMalformed?: (error: TallyMalformedResultError, where: { topic: string; partition: number; offset: string }) => void;
}

/** The iterator results() returns; also closable from outside the loop. */
export interface ResultStream extends AsyncIterableIterator<TallyResult> {
  /**
   * Stops consuming. Leaving the loop (break, return, throw) cannot tell
   * success from failure, so the result the loop was in is not committed and
   * comes again; call `close({ commitCurrent: true })` before `break` to
   * commit it.
   */
  close(options?: { commitCurrent?: boolean }): Promise<void>;
}

/** The options of TallyClient from the worker's environment variables (KAFKA_BOOTSTRAP_SERVERS, TALLY_*_TOPIC). */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): TallyClientOptions {
  const brokers = env.KAFKA_BOOTSTRAP_SERVERS;
  if (brokers === undefined || brokers === '') throw new Error('KAFKA_BOOTSTRAP_SERVERS is not set');
  const opts: TallyClientOptions = { brokers };
  if (env.TALLY_REQUEST_TOPIC) opts.requestTopic = env.TALLY_REQUEST_TOPIC;
  if (env.TALLY_RESULT_TOPIC) opts.resultTopic = env.TALLY_RESULT_TOPIC;
  if (env.TALLY_AUDIT_TOPIC) opts.auditTopic = env.TALLY_AUDIT_TOPIC;
  if (env.TALLY_DLQ_TOPIC) opts.dlqTopic = env.TALLY_DLQ_TOPIC;
  return opts;
}

interface Pending {
  resolve: (r: OkResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class TallyClient {
  readonly requestTopic: string;
  readonly resultTopic: string;
  readonly replyTopic: string;
  /** Topics reply_to may not name. */
  private readonly ownTopics: ForbiddenTopics;
  private readonly callTimeoutMs: number;
  private readonly kafka: InstanceType<typeof Kafka>;
  private readonly consumerTimings: Required<NonNullable<TallyClientOptions['consumer']>>;
  private producer: Promise<Producer> | null = null;
  private replies: Promise<Consumer> | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly streams = new Set<ResultStream>();

  constructor(options: TallyClientOptions) {
    const brokers = typeof options.brokers === 'string' ? options.brokers.split(',') : options.brokers;
    this.requestTopic = options.requestTopic ?? 'tally.requests';
    this.resultTopic = options.resultTopic ?? 'tally.results';
    this.ownTopics = {
      request: this.requestTopic,
      audit: options.auditTopic ?? 'tally.audit',
      dlq: options.dlqTopic ?? 'tally.dlq',
    };
    this.replyTopic = options.replyTopic ?? 'tally.replies';
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.consumerTimings = {
      sessionTimeout: options.consumer?.sessionTimeout ?? 30_000,
      heartbeatInterval: options.consumer?.heartbeatInterval ?? 3_000,
      maxWaitTimeInMs: options.consumer?.maxWaitTimeInMs ?? 100,
    };
    this.kafka = new Kafka({
      logLevel: logLevel.WARN,
      ...options.kafka,
      clientId: options.clientId ?? 'tally-client',
      brokers: brokers.map((b) => b.trim()).filter((b) => b !== ''),
    });
  }

  /**
   * Sends one request and returns its id once the broker acknowledged it. The
   * message is keyed by accountId; the payload is checked against the job
   * type's schema first (TallyValidationError names the field, as the worker would).
   */
  async send<T extends JobType>(accountId: string, type: T, payload: Requests[T], opts: SendOptions = {}): Promise<string> {
    const msg = buildRequest(accountId, type, payload, opts, this.ownTopics);
    await this.produce(msg);
    return msg.id;
  }

  private async produce(msg: WireMessage): Promise<void> {
    const producer = await this.connectProducer();
    await producer.send({
      topic: this.requestTopic,
      acks: -1,
      messages: [{ key: msg.key, value: msg.value, headers: msg.headers }],
    });
  }

  /**
   * Sends a request with reply_to = replyTopic and resolves with its ok
   * result; rejects with TallyResultError for an error result, with
   * TallyTimeoutError when none came within the timeout (the request may
   * still be applied: call again with the same id to learn its outcome).
   */
  async call<T extends JobType>(accountId: string, type: T, payload: Requests[T], opts: CallOptions = {}): Promise<OkResult<T>> {
    const timeoutMs = opts.timeoutMs ?? this.callTimeoutMs;
    // Checked before waiting for the reply consumer, so bad input fails at once.
    const msg = buildRequest(accountId, type, payload, { ...opts, replyTo: this.replyTopic }, this.ownTopics);
    await this.connectReplies();
    const key = resultKey(accountId, msg.id);
    if (this.pending.has(key)) throw new Error(`a call for request ${msg.id} of account ${accountId} is already waiting`);
    const result = new Promise<OkResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new TallyTimeoutError(accountId, msg.id, timeoutMs));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
    });
    try {
      await this.produce(msg);
    } catch (e) {
      const p = this.pending.get(key);
      if (p !== undefined) {
        clearTimeout(p.timer);
        this.pending.delete(key);
      }
      result.catch(() => {});
      throw e;
    }
    return (await result) as OkResult<T>;
  }

  /**
   * Results from a result topic in a consumer group, for `for await`. A
   * result whose (account_id, id) was among the last dedupeWindow ones is
   * skipped; an offset is committed only after the loop body that got its
   * result finished, so a crash or a throw redelivers it.
   */
  results(options: ResultsOptions): ResultStream {
    const topic = options.topic ?? this.resultTopic;
    const seen = new RecentKeys(options.dedupeWindow ?? 50_000);
    const handoff = new Handoff<TallyResult>();
    const consumer = this.kafka.consumer({ groupId: options.groupId, ...this.consumerTimings });
    let started: Promise<void> | null = null;
    let closing: Promise<void> | null = null;

    const commitNext = (partition: number, message: KafkaMessage) =>
      consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);

    const start = async (): Promise<void> => {
      consumer.on(consumer.events.CRASH, (e) => {
        if (!e.payload.restart) handoff.fail(e.payload.error);
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: options.fromBeginning ?? false });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: 1,
        eachMessage: async ({ partition, message }) => {
          let result: TallyResult;
          try {
            result = parseResult(message);
          } catch (e) {
            if (!(e instanceof TallyMalformedResultError)) throw e;
            options.onMalformed?.(e, { topic, partition, offset: message.offset });
            await commitNext(partition, message);
            return;
          }
          const key = resultKey(result.account_id, result.id);
          if (!seen.has(key)) {
            if ((await handoff.put(result)) === 'closed') return; // not processed: no commit
            seen.add(key);
          }
          await commitNext(partition, message);
        },
      });
    };

    const close = (how: { commitCurrent?: boolean } = {}): Promise<void> => {
      if (closing === null) {
        handoff.close(how.commitCurrent === true ? 'processed' : 'closed');
        this.streams.delete(stream);
        closing = (started ?? Promise.resolve()).catch(() => {}).then(() => consumer.disconnect());
      }
      return closing;
    };

    const stream: ResultStream = {
      next: async () => {
        if (started === null) {
          started = start();
          started.catch((e: unknown) => handoff.fail(e));
        }
        return handoff.next();
      },
      return: async () => {
        await close();
        return { value: undefined, done: true };
      },
      close,
      [Symbol.asyncIterator]() {
        return stream;
      },
    };
    this.streams.add(stream);
    return stream;
  }

  /** Disconnects everything; pending calls reject. */
  async close(): Promise<void> {
    for (const [key, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error('the client was closed'));
      this.pending.delete(key);
    }
    await Promise.all([...this.streams].map((s) => s.close()));
    const producer = this.producer;
    const replies = this.replies;
    this.producer = null;
    this.replies = null;
    await Promise.all([
      producer?.then((p) => p.disconnect()).catch(() => {}),
      replies?.then((c) => c.disconnect()).catch(() => {}),
    ]);
  }

  private connectProducer(): Promise<Producer> {
    if (this.producer === null) {
      // Java-compatible murmur2 on the key, so one account stays in one
      // partition; one request in flight, so a retry cannot reorder an
      // account's requests. Not kafkajs's idempotent producer: it needs the
      // cluster's controller, which the embedded broker does not name; a
      // retried duplicate is harmless anyway (the same id is a replay).
      const p = this.kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        maxInFlightRequests: 1,
      });
      this.producer = p.connect().then(() => p);
      this.producer.catch(() => {
        this.producer = null;
      });
    }
    return this.producer;
  }

  // A consumer group of its own on the reply topic, starting at its end: it
  // is ready once it joined and resolved its start offsets (the first fetch
  // after joining), so no reply to a call sent afterwards can be missed.
  private connectReplies(): Promise<Consumer> {
    if (this.replies === null) {
      const groupId = `tally-client-replies-${newGroupSuffix()}`;
      const c = this.kafka.consumer({ groupId, ...this.consumerTimings });
      this.replies = new Promise<Consumer>((resolve, reject) => {
        let joined = false;
        const offJoin = c.on(c.events.GROUP_JOIN, () => {
          joined = true;
        });
        const offFetch = c.on(c.events.FETCH, () => {
          if (!joined) return;
          offJoin();
          offFetch();
          resolve(c);
        });
        c.on(c.events.CRASH, (e) => {
          if (!e.payload.restart) reject(e.payload.error);
        });
        (async () => {
          await c.connect();
          await c.subscribe({ topic: this.replyTopic, fromBeginning: false });
          await c.run({ autoCommit: false, eachMessage: async ({ message }) => this.onReply(message) });
        })().catch(reject);
      });
      this.replies.catch(() => {
        this.replies = null;
      });
    }
    return this.replies;
  }

  private onReply(message: KafkaMessage): void {
    let result: TallyResult;
    try {
      result = parseResult(message);
    } catch {
      return; // not a result: nobody waits for it
    }
    const key = resultKey(result.account_id, result.id);
    const p = this.pending.get(key);
    if (p === undefined) return; // another client's, a late one, or a replay already answered
    clearTimeout(p.timer);
    this.pending.delete(key);
    if (result.status === 'ok') p.resolve(result);
    else p.reject(new TallyResultError(result));
  }
}

function newGroupSuffix(): string {
  return `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

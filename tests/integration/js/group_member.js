// A consumer-group member on kafkajs 2.2.4, driven by the integration tests like every
// other library's member.
//
// Usage: node group_member.js --bootstrap HOST:PORT --group G --topic T [--topic T2 ...]
//          --client-id ID [--instance-id I] [--assignor range|roundrobin|cooperative-sticky]
//          [--session-timeout-ms 6000] [--heartbeat-ms 1000] [--commit sync|none]
//          [--from earliest|latest]
// kafkajs has no static membership and only the round-robin assignor: --instance-id, and
// any --assignor but roundrobin (so also the default, range), print an error event and exit 2.
//
// stdout carries only JSON lines, one per event: ready; assigned / revoked with
// "partitions" (the change) and "all" (the assignment after it); record (topic, partition,
// offset, key, value); commit_failed; error; closed. Records are handled per fetched batch
// with eachBatch: with --commit sync the batch is committed synchronously (one
// OffsetCommit with explicit offsets) and only then are its records printed; a failed
// commit prints commit_failed, leaves the batch unresolved (so it is fetched again) and
// rethrows, so kafkajs rejoins on rebalance errors. kafkajs is eager: a rebalance revokes
// everything, then assigns the new set. Logs go to stderr.
// SIGTERM/SIGINT: consumer.disconnect() (LeaveGroup), "closed", exit 0.
'use strict'
const { parseArgs } = require('util')
const { Kafka, logLevel, PartitionAssigners } = require('kafkajs')

function emit(ev) {
  // process.stdout is synchronous for pipes and files on Linux: each line is out at once.
  process.stdout.write(JSON.stringify(ev) + '\n')
}

function log(msg) {
  process.stderr.write(`[group_member ${new Date().toISOString()}] ${msg}\n`)
}

function usageError(msg) {
  log(msg)
  emit({ event: 'error', message: msg })
  process.exit(2)
}

function parse() {
  let parsed
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        bootstrap: { type: 'string' },
        group: { type: 'string' },
        topic: { type: 'string', multiple: true },
        'client-id': { type: 'string', default: 'kafkajs-member' },
        'instance-id': { type: 'string' },
        assignor: { type: 'string', default: 'range' },
        'session-timeout-ms': { type: 'string', default: '6000' },
        'heartbeat-ms': { type: 'string', default: '1000' },
        commit: { type: 'string', default: 'sync' },
        from: { type: 'string', default: 'earliest' },
      },
    })
  } catch (e) {
    usageError(`bad arguments: ${e.message}`)
  }
  const v = parsed.values
  if (!v.bootstrap || !v.group || !v.topic || v.topic.length === 0) {
    usageError('--bootstrap, --group and at least one --topic are required')
  }
  if (v['instance-id'] !== undefined) {
    usageError('static membership (--instance-id) is not supported by kafkajs 2.2.4')
  }
  if (v.assignor !== 'roundrobin') {
    usageError(`assignor "${v.assignor}" is not supported by kafkajs 2.2.4 (roundrobin only)`)
  }
  if (v.commit !== 'sync' && v.commit !== 'none') usageError(`--commit must be sync or none, not "${v.commit}"`)
  if (v.from !== 'earliest' && v.from !== 'latest') usageError(`--from must be earliest or latest, not "${v.from}"`)
  const int = name => {
    const n = Number(v[name])
    if (!Number.isInteger(n) || n <= 0) usageError(`--${name} must be a positive integer`)
    return n
  }
  return {
    bootstrap: v.bootstrap,
    group: v.group,
    topics: v.topic,
    clientId: v['client-id'],
    sessionTimeoutMs: int('session-timeout-ms'),
    heartbeatMs: int('heartbeat-ms'),
    commitSync: v.commit === 'sync',
    fromBeginning: v.from === 'earliest',
  }
}

// kafkajs logs JSON to stderr; its default logger writes INFO to stdout.
const stderrLogCreator = () => ({ namespace, label, log: entry }) => {
  const { message, ...rest } = entry
  process.stderr.write(`[kafkajs ${label}] ${namespace ? `[${namespace}] ` : ''}${message} ${JSON.stringify(rest)}\n`)
}

// Partitions as [["t",0],...], sorted by topic then partition.
function tpList(byTopic) {
  const out = []
  for (const topic of Object.keys(byTopic).sort()) {
    for (const p of [...byTopic[topic]].sort((a, b) => a - b)) out.push([topic, p])
  }
  return out
}

function str(buf) {
  return buf === null || buf === undefined ? null : buf.toString('utf8')
}

async function main() {
  const opts = parse()
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: [opts.bootstrap],
    logLevel: logLevel.INFO,
    logCreator: stderrLogCreator,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
  })
  const consumer = kafka.consumer({
    groupId: opts.group,
    partitionAssigners: [PartitionAssigners.roundRobin],
    sessionTimeout: opts.sessionTimeoutMs,
    heartbeatInterval: opts.heartbeatMs,
    // kafkajs heartbeats only between fetches: keep long polls short so it notices a
    // rebalance quickly.
    maxWaitTimeInMs: Math.min(500, opts.heartbeatMs),
  })

  let current = [] // [["t",p],...] assigned now
  const revokeAll = () => {
    if (current.length === 0) return
    emit({ event: 'revoked', partitions: current, all: [] })
    current = []
  }

  const { GROUP_JOIN, REBALANCING, CRASH } = consumer.events
  consumer.on(REBALANCING, () => {
    log('rebalancing')
    revokeAll()
  })
  consumer.on(GROUP_JOIN, ({ payload }) => {
    log(`joined generation member=${payload.memberId} leader=${payload.isLeader} protocol=${payload.groupProtocol}`)
    revokeAll()
    current = tpList(payload.memberAssignment || {})
    emit({ event: 'assigned', partitions: current, all: current })
  })

  let closing = false
  consumer.on(CRASH, ({ payload }) => {
    const e = payload.error
    log(`crash restart=${payload.restart}: ${e && e.stack ? e.stack : e}`)
    revokeAll() // kafkajs disconnects (leaves the group) before restarting
    if (closing) return
    emit({ event: 'error', message: `${e && e.name}: ${e && e.message}` })
    if (!payload.restart) process.exit(1)
  })

  const close = async sig => {
    if (closing) return
    closing = true
    log(`${sig}: closing`)
    setTimeout(() => {
      emit({ event: 'error', message: 'clean close did not finish in time' })
      process.exit(1)
    }, 30000).unref()
    try {
      await consumer.disconnect()
    } catch (e) {
      log(`disconnect: ${e.stack || e}`)
    }
    revokeAll()
    emit({ event: 'closed' })
    process.exit(0)
  }
  process.on('SIGTERM', () => close('SIGTERM'))
  process.on('SIGINT', () => close('SIGINT'))

  await consumer.connect()
  await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning })
  emit({ event: 'ready' })

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      const { topic, partition, messages } = batch
      if (messages.length === 0) return
      const last = messages[messages.length - 1].offset
      if (opts.commitSync) {
        const next = (BigInt(last) + 1n).toString()
        try {
          // With explicit offsets this is one OffsetCommit to the coordinator, no retries.
          await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: next }] }] })
        } catch (e) {
          log(`commit failed ${topic}/${partition} offset=${next}: ${e.stack || e}`)
          emit({ event: 'commit_failed', error: `${e.type || e.name}: ${e.message}` })
          throw e // unresolved: fetched again; rebalance errors make kafkajs rejoin
        }
      }
      resolveOffset(last)
      for (const m of messages) {
        emit({ event: 'record', topic, partition, offset: Number(m.offset), key: str(m.key), value: str(m.value) })
      }
    },
  })
}

main().catch(e => {
  log(e && e.stack ? e.stack : String(e))
  emit({ event: 'error', message: `${e && e.name}: ${e && e.message}` })
  process.exit(1)
})

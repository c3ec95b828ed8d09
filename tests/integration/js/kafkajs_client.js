// Drives stratus with kafkajs 2.2.4 for tests/integration/test_kafkajs.py.
// Usage:
//   node kafkajs_client.js produce BOOTSTRAP TOPIC N PARTITIONS CODEC   (CODEC: none | gzip)
//   node kafkajs_client.js admin BOOTSTRAP TOPIC_PREFIX
// Prints one JSON object on stdout; exits non-zero (with the error on stderr) on failure.
'use strict'
const { Kafka, logLevel, CompressionTypes, Partitioners, ConfigResourceTypes } = require('kafkajs')

function client(bootstrap) {
  return new Kafka({
    clientId: 'stratus-it',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
  })
}

async function produce(bootstrap, topic, n, partitions, codec) {
  const kafka = client(bootstrap)
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  })
  await admin.disconnect()

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const compression = codec === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None
  const chunk = 2000
  const perPartitionLast = {}
  for (let start = 0; start < n; start += chunk) {
    const messages = []
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      messages.push({
        key: `key-${i % 1000}`,
        value: `value-${i}`,
        headers: { seq: String(i), codec },
      })
    }
    // Sequential sends keep produce order per partition.
    const res = await producer.send({ topic, acks: -1, compression, messages })
    for (const r of res) {
      if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`)
      perPartitionLast[r.partition] = r.baseOffset
    }
  }
  await producer.disconnect()
  console.log(JSON.stringify({ created, baseOffsets: perPartitionLast }))
}

function errInfo(e) {
  return { name: e.name, type: e.type || null, message: e.message }
}

async function admin(bootstrap, prefix) {
  const kafka = client(bootstrap)
  const admin = kafka.admin()
  await admin.connect()
  const out = {}
  const t = `${prefix}-admin`
  const cfgTopic = `${prefix}-cfg`

  out.created = await admin.createTopics({
    topics: [
      { topic: t, numPartitions: 3, replicationFactor: 1 },
      { topic: cfgTopic, numPartitions: 1, replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '3600000' }] },
    ],
    waitForLeaders: true,
  })
  // Creating again: kafkajs reports false (TOPIC_ALREADY_EXISTS is swallowed) or throws.
  try {
    out.createdAgain = await admin.createTopics({ topics: [{ topic: t, numPartitions: 3 }] })
  } catch (e) {
    out.createdAgain = errInfo(e)
  }
  try {
    await admin.createTopics({ topics: [{ topic: `${prefix}-rf3`, numPartitions: 1, replicationFactor: 3 }] })
    out.rf3 = 'created'
  } catch (e) {
    out.rf3 = { ...errInfo(e), errors: (e.errors || []).map(x => ({ type: x.type, message: x.message })) }
  }
  out.topics = (await admin.listTopics()).sort()

  // Records with known timestamps: 10 per partition of t, timestamps 1000*(i+1) ms apart.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const base = Date.now() - 600000
  for (let p = 0; p < 3; p++) {
    const messages = []
    for (let i = 0; i < 10; i++) {
      messages.push({ partition: p, value: `p${p}-${i}`, timestamp: String(base + i * 1000) })
    }
    await producer.send({ topic: t, acks: -1, messages })
  }
  await producer.disconnect()
  out.base = base

  out.offsets = await admin.fetchTopicOffsets(t)
  out.byTimestamp = await admin.fetchTopicOffsetsByTimestamp(t, base + 4500)
  out.byTimestampFuture = await admin.fetchTopicOffsetsByTimestamp(t, base + 3600000)

  await admin.deleteTopicRecords({ topic: t, partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '-1' }] })
  out.offsetsAfterDelete = await admin.fetchTopicOffsets(t)

  await admin.createPartitions({ topicPartitions: [{ topic: t, count: 5 }] })
  out.offsetsAfterCreatePartitions = await admin.fetchTopicOffsets(t)
  try {
    await admin.createPartitions({ topicPartitions: [{ topic: t, count: 2 }] })
    out.shrink = 'ok'
  } catch (e) {
    out.shrink = errInfo(e)
  }

  const cluster = await admin.describeCluster()
  out.cluster = cluster

  const cfg = await admin.describeConfigs({
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: cfgTopic },
      { type: ConfigResourceTypes.BROKER, name: String(cluster.brokers[0].nodeId), configNames: ['log.retention.ms', 'num.partitions'] },
    ],
    includeSynonyms: false,
  })
  out.configs = cfg.resources.map(r => ({
    type: r.resourceType,
    name: r.resourceName,
    errorCode: r.errorCode,
    entries: Object.fromEntries(r.configEntries.map(c => [c.configName, { value: c.configValue, isDefault: c.isDefault, source: c.configSource }])),
  }))

  await admin.deleteTopics({ topics: [cfgTopic] })
  out.topicsAfterDelete = (await admin.listTopics()).sort()
  await admin.disconnect()
  console.log(JSON.stringify(out))
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2)
  if (cmd === 'produce') {
    await produce(args[0], args[1], parseInt(args[2], 10), parseInt(args[3], 10), args[4])
  } else if (cmd === 'admin') {
    await admin(args[0], args[1])
  } else {
    throw new Error(`unknown command ${cmd}`)
  }
}

main().then(
  () => process.exit(0),
  e => {
    console.error(e && e.stack ? e.stack : String(e))
    process.exit(1)
  }
)

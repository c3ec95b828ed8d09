#!/usr/bin/env python3
"""Captures golden request frames from real clients (run by hand, then commit the .bin files).

Starts build/asan/stratus with STRATUS_CAPTURE_DIR pointing here and drives it with kcat,
confluent-kafka (librdkafka), kafka-python and kafkajs. The unit test
codec_golden_frames_round_trip decodes each frame and checks that re-encoding gives the
same bytes.   Usage: /usr/bin/python3 tests/unit/golden/capture.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
bootstrap = f"127.0.0.1:{port}"
data = tempfile.mkdtemp(prefix="stratus-golden-")
env = dict(os.environ, STRATUS_CAPTURE_DIR=here)
proc = subprocess.Popen([os.path.join(root, "build/asan/stratus"), "broker",
                         "--override", f"listeners=PLAINTEXT://{bootstrap}",
                         "--override", f"log.dirs={data}"], env=env)
try:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    run = lambda *a, **k: subprocess.run(*a, timeout=60, check=True, **k)
    run(["kcat", "-P", "-b", bootstrap, "-t", "golden", "-K:", "-z", "gzip"], input=b"a:1\nb:2\n")
    run(["kcat", "-C", "-b", bootstrap, "-t", "golden", "-e", "-q"], stdout=subprocess.DEVNULL)
    run(["kcat", "-L", "-b", bootstrap], stdout=subprocess.DEVNULL)

    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap, "client.id": "confluent"})
    a.create_topics([NewTopic("g2", 2, 1, config={"retention.ms": "60000"})])["g2"].result(10)
    a.describe_configs([ConfigResource("topic", "g2")])
    time.sleep(0.5)
    a.create_partitions([NewPartitions("g2", 3)])["g2"].result(10)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "client.id": "confluent",
                  "compression.type": "zstd"})
    p.produce("g2", key=b"k", value=b"v", headers=[("h", b"1")])
    p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "client.id": "confluent"})
    c.assign([TopicPartition("g2", 0, 0)])
    c.consume(1, 2.0)
    c.offsets_for_times([TopicPartition("g2", 0, 0)], 5)
    c.close()
    a.delete_topics(["g2"])["g2"].result(10)

    import kafka
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, client_id="kafkapython", acks="all")
    kp.send("golden", key=b"k", value=b"v").get(10)
    kp.close()
    kc = kafka.KafkaConsumer(bootstrap_servers=bootstrap, client_id="kafkapython")
    kc.assign([kafka.TopicPartition("golden", 0)])
    kc.seek_to_beginning()
    kc.poll(2000)
    kc.close()
    ka = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kafkapython")
    ka.create_topics([kafka.admin.NewTopic("g3", 1, 1)])
    ka.delete_topics(["g3"])
    ka.close()

    js = """
const { Kafka, logLevel } = require('kafkajs');
(async () => {
  const k = new Kafka({ clientId: 'kafkajs', brokers: [process.argv[1]], logLevel: logLevel.NOTHING });
  const admin = k.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'g4', numPartitions: 2 }] });
  await admin.fetchTopicOffsets('g4');
  const p = k.producer(); await p.connect();
  await p.send({ topic: 'g4', messages: [{ key: 'k', value: 'v', headers: { h: '1' } }] });
  await p.disconnect();
  await admin.deleteTopics({ topics: ['g4'] });
  await admin.disconnect();
})().catch(e => { console.error(e); process.exit(1); });
"""
    run(["node", "-e", js, bootstrap], cwd=os.path.join(root, "tests", "integration"))
finally:
    proc.terminate()
    proc.wait(20)
    subprocess.run(["rm", "-rf", data])
print("\n".join(sorted(f for f in os.listdir(here) if f.endswith(".bin"))))

// Command group_member is a consumer-group member on sarama 1.22.1 (Debian
// golang-github-shopify-sarama-dev) that the integration tests drive like every other
// library's member.
//
// Usage:
//
//	sarama_member --bootstrap HOST:PORT --group G --topic T [--topic T2 ...] --client-id ID
//	  [--instance-id I] [--assignor range|roundrobin|cooperative-sticky]
//	  [--session-timeout-ms 6000] [--heartbeat-ms 1000] [--commit sync|none]
//	  [--from earliest|latest] [--kafka-version 0.11.0.0]
//
// sarama 1.22 has no static membership and no cooperative-sticky assignor: --instance-id,
// or --assignor cooperative-sticky, print an error event and exit 2.
//
// stdout carries only JSON lines, one per event: ready; assigned / revoked with
// "partitions" (the change) and "all" (the assignment after it); record (topic, partition,
// offset, key, value); commit_failed; error; closed. Logs (sarama's too) go to stderr.
// With --commit sync a record is printed only after a synchronous OffsetCommit covering it
// succeeded. sarama 1.22 has no synchronous commit call (MarkOffset commits later, in the
// background), so this program sends the OffsetCommit itself, exactly as sarama's offset
// manager builds it: version 1 (Offsets.Retention = 0), this session's member id and
// generation, timestamp -1. SIGTERM/SIGINT: end the session, ConsumerGroup.Close
// (LeaveGroup), "closed", exit 0.
//
// Build: scripts/build-test-clients.sh (GOPATH mode, offline, against /usr/share/gocode).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Shopify/sarama"
)

// maxBatch bounds how many already-fetched records are processed and committed together.
const maxBatch = 500

// closeTimeout bounds a clean close; after it the member reports an error and exits 1.
const closeTimeout = 30 * time.Second

var (
	outMu  sync.Mutex
	logger = log.New(os.Stderr, "[group_member] ", log.LstdFlags|log.Lmicroseconds)
)

// emit writes one JSON object, built from alternating keys and values in that order
// ("event" first), and a newline to stdout in a single write (stdout is unbuffered in Go,
// so it is out at once). Safe from any goroutine.
func emit(event string, kvs ...interface{}) {
	b := []byte(`{"event":`)
	ev, _ := json.Marshal(event)
	b = append(b, ev...)
	for i := 0; i+1 < len(kvs); i += 2 {
		k, _ := json.Marshal(kvs[i])
		v, err := json.Marshal(kvs[i+1])
		if err != nil {
			logger.Printf("json: %v", err)
			return
		}
		b = append(b, ',')
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, v...)
	}
	b = append(b, '}', '\n')
	outMu.Lock()
	defer outMu.Unlock()
	if _, err := os.Stdout.Write(b); err != nil {
		logger.Printf("stdout: %v", err)
	}
}

func emitError(msg string) {
	emit("error", "message", msg)
}

// usageError reports a bad command line the way the contract asks: an error event, exit 2.
func usageError(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	logger.Print(msg)
	emitError(msg)
	os.Exit(2)
}

type topicList []string

func (t *topicList) String() string     { return strings.Join(*t, ",") }
func (t *topicList) Set(v string) error { *t = append(*t, v); return nil }

type tp struct {
	topic     string
	partition int32
}

// tpJSON renders partitions as [["t",0],...], sorted by topic then partition.
func tpJSON(tps []tp) [][]interface{} {
	sorted := append([]tp(nil), tps...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].topic != sorted[j].topic {
			return sorted[i].topic < sorted[j].topic
		}
		return sorted[i].partition < sorted[j].partition
	})
	out := make([][]interface{}, 0, len(sorted))
	for _, x := range sorted {
		out = append(out, []interface{}{x.topic, x.partition})
	}
	return out
}

func claimsList(claims map[string][]int32) []tp {
	var tps []tp
	for topic, parts := range claims {
		for _, p := range parts {
			tps = append(tps, tp{topic, p})
		}
	}
	return tps
}

func nullableString(b []byte) interface{} {
	if b == nil {
		return nil
	}
	return string(b)
}

// handler implements sarama.ConsumerGroupHandler. sarama's ConsumerGroup is eager: every
// rebalance ends the session (Cleanup: everything revoked) and starts a new one (Setup:
// the new assignment), so "partitions" always equals "all" for assigned.
type handler struct {
	client     sarama.Client
	group      string
	commitSync bool
}

func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	tps := claimsList(sess.Claims())
	logger.Printf("setup member=%s generation=%d claims=%v", sess.MemberID(), sess.GenerationID(), tps)
	emit("assigned", "partitions", tpJSON(tps), "all", tpJSON(tps))
	return nil
}

func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	tps := claimsList(sess.Claims())
	logger.Printf("cleanup member=%s generation=%d", sess.MemberID(), sess.GenerationID())
	emit("revoked", "partitions", tpJSON(tps), "all", tpJSON(nil))
	return nil
}

// commit synchronously commits <offset> (the next offset to read) for one partition with
// the OffsetCommit sarama's own offset manager would send (v1, Retention 0).
func (h *handler) commit(sess sarama.ConsumerGroupSession, topic string, partition int32, offset int64) error {
	coordinator, err := h.client.Coordinator(h.group)
	if err != nil {
		return fmt.Errorf("coordinator: %v", err)
	}
	req := &sarama.OffsetCommitRequest{
		Version:                 1,
		ConsumerGroup:           h.group,
		ConsumerID:              sess.MemberID(),
		ConsumerGroupGeneration: sess.GenerationID(),
	}
	req.AddBlock(topic, partition, offset, sarama.ReceiveTime, "")
	resp, err := coordinator.CommitOffset(req)
	if err != nil {
		// The connection is in an unknown state: drop it, as sarama's offset manager does.
		_ = coordinator.Close()
		return fmt.Errorf("OffsetCommit: %v", err)
	}
	kerr, ok := resp.Errors[topic][partition]
	if !ok {
		return fmt.Errorf("OffsetCommit: no result for %s/%d", topic, partition)
	}
	if kerr != sarama.ErrNoError {
		if kerr == sarama.ErrNotCoordinatorForConsumer || kerr == sarama.ErrConsumerCoordinatorNotAvailable {
			_ = h.client.RefreshCoordinator(h.group)
		}
		return fmt.Errorf("OffsetCommit: %s (%d)", kerr.Error(), int16(kerr))
	}
	return nil
}

// ConsumeClaim processes what was fetched in batches: take every record already waiting
// (up to maxBatch), commit the batch synchronously, then print its records. A failed
// commit ends the session (returning cancels it), so the group rejoins and the
// uncommitted records are fetched again from the committed offset.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	msgs := claim.Messages()
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case <-sess.Context().Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
		closed := false
	drain:
		for len(batch) < maxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}

		last := batch[len(batch)-1]
		if h.commitSync {
			if err := h.commit(sess, claim.Topic(), claim.Partition(), last.Offset+1); err != nil {
				logger.Printf("commit failed %s/%d offset=%d: %v", claim.Topic(), claim.Partition(), last.Offset+1, err)
				emit("commit_failed", "error", err.Error())
				return nil
			}
		}
		for _, m := range batch {
			emit("record", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
				"key", nullableString(m.Key), "value", nullableString(m.Value))
		}
		if closed {
			return nil
		}
	}
}

func main() {
	// ContinueOnError: a bad flag becomes an error event and exit 2 like other usage errors.
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	var topics topicList
	bootstrap := flag.String("bootstrap", "", "HOST:PORT")
	group := flag.String("group", "", "consumer group id")
	flag.Var(&topics, "topic", "topic to consume (repeatable)")
	clientID := flag.String("client-id", "sarama-member", "client id")
	instanceID := flag.String("instance-id", "", "static member id (unsupported by sarama 1.22)")
	assignor := flag.String("assignor", "range", "range | roundrobin | cooperative-sticky")
	sessionMs := flag.Int("session-timeout-ms", 6000, "session timeout")
	heartbeatMs := flag.Int("heartbeat-ms", 1000, "heartbeat interval")
	commitMode := flag.String("commit", "sync", "sync | none")
	from := flag.String("from", "earliest", "earliest | latest (when the group has no offset)")
	kafkaVersion := flag.String("kafka-version", "0.11.0.0", "sarama Config.Version")
	if err := flag.CommandLine.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		usageError("bad arguments: %v", err)
	}

	if flag.NArg() > 0 {
		usageError("unexpected arguments: %v", flag.Args())
	}
	if *bootstrap == "" || *group == "" || len(topics) == 0 {
		usageError("--bootstrap, --group and at least one --topic are required")
	}
	if *instanceID != "" {
		usageError("static membership (--instance-id) is not supported by sarama 1.22.1")
	}

	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	cfg := sarama.NewConfig()
	version, err := sarama.ParseKafkaVersion(*kafkaVersion)
	if err != nil {
		usageError("--kafka-version: %v", err)
	}
	cfg.Version = version
	cfg.ClientID = *clientID
	switch *assignor {
	case "range":
		cfg.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRange
	case "roundrobin":
		cfg.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRoundRobin
	default:
		usageError("assignor %q is not supported by sarama 1.22.1 (range, roundrobin)", *assignor)
	}
	switch *commitMode {
	case "sync", "none":
	default:
		usageError("--commit must be sync or none, not %q", *commitMode)
	}
	switch *from {
	case "earliest":
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	case "latest":
		cfg.Consumer.Offsets.Initial = sarama.OffsetNewest
	default:
		usageError("--from must be earliest or latest, not %q", *from)
	}
	cfg.Consumer.Group.Session.Timeout = time.Duration(*sessionMs) * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = time.Duration(*heartbeatMs) * time.Millisecond
	cfg.Consumer.Return.Errors = true
	if err := cfg.Validate(); err != nil {
		usageError("config: %v", err)
	}

	client, err := sarama.NewClient([]string{*bootstrap}, cfg)
	if err != nil {
		emitError(fmt.Sprintf("client: %v", err))
		os.Exit(1)
	}
	cg, err := sarama.NewConsumerGroupFromClient(*group, client)
	if err != nil {
		emitError(fmt.Sprintf("consumer group: %v", err))
		os.Exit(1)
	}
	go func() {
		for err := range cg.Errors() {
			if err == nil {
				// sarama 1.22's heartbeat loop reports an unexpected Heartbeat error
				// code as a nil error (it passes the transport error, which is nil) and
				// ends the session.
				err = errors.New("heartbeat failed with an unexpected error code (sarama does not say which)")
			}
			logger.Printf("error: %v", err)
			emitError(err.Error())
		}
	}()

	// closeGroup ends the running session (Cleanup prints "revoked"), leaves the group
	// (LeaveGroup) and returns once that is done, however many goroutines call it.
	// Calling it from the signal handler, not only after Consume returned, matters:
	// sarama 1.22 retries a failed coordinator lookup inside Consume without limit
	// until the group is closed.
	var closeOnce sync.Once
	closeGroup := func() {
		closeOnce.Do(func() {
			if err := cg.Close(); err != nil {
				logger.Printf("consumer group close: %v", err)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		logger.Printf("%v: closing", sig)
		time.AfterFunc(closeTimeout, func() {
			emitError("clean close did not finish in time")
			os.Exit(1)
		})
		cancel()
		closeGroup()
	}()

	h := &handler{client: client, group: *group, commitSync: *commitMode == "sync"}
	emit("ready")
	for ctx.Err() == nil {
		// Consume runs one session: join, sync, consume until a rebalance or ctx ends.
		err := cg.Consume(ctx, topics, h)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			logger.Printf("consume: %v", err)
			emitError(fmt.Sprintf("consume: %v", err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}

	closeGroup()
	if err := client.Close(); err != nil && err != sarama.ErrClosedClient {
		logger.Printf("client close: %v", err)
	}
	emit("closed")
	os.Exit(0)
}

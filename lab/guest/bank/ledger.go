package main

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// A transfer moves Amount into Account on the receiving node. Its identity is
// (sender, receiver, transport, Seq): the receiver applies each identity once,
// so a retransmission is harmless and a restored sender that reuses a sequence
// number for a different transfer shows up as a conflict.
type transfer struct {
	Seq     uint64 `json:"seq"`
	Account int    `json:"account"`
	Amount  int64  `json:"amount"`
}

type pending struct {
	transfer
	firstSent time.Time
	lastSent  time.Time
}

// channel is the state of one (peer, transport) pair in both directions:
// what this node sent and is still waiting to see acknowledged, and what it
// has applied from the peer.
type channel struct {
	peer      string
	transport string

	nextSeq uint64
	unacked map[uint64]*pending

	appliedUpTo  uint64
	appliedAbove map[uint64]transfer
	// Transfers applied recently, kept to tell a harmless duplicate from a
	// different transfer carrying an already used sequence number.
	recent map[uint64]transfer
}

type counters struct {
	Sent        uint64 `json:"sent"`
	Acked       uint64 `json:"acked"`
	Received    uint64 `json:"received"`
	Duplicates  uint64 `json:"duplicates"`
	Conflicts   uint64 `json:"conflicts"`
	Retransmits uint64 `json:"retransmits"`
	Malformed   uint64 `json:"malformed"`
	Connects    uint64 `json:"connects"`
}

// ledger is the node's whole state. Every change goes through one mutex: the
// invariant (balances + money in flight = initial total) must never be
// observable half-updated.
type ledger struct {
	mu          sync.Mutex
	node        string
	balances    []int64
	initial     int64
	paused      bool
	maxInFlight int
	channels    map[string]*channel
	counters    counters
}

const recentWindow = 4096

func channelKey(peer, transport string) string { return peer + "/" + transport }

func newLedger(node string, accounts int, balance int64, peers []string, transports []string, maxInFlight int) *ledger {
	l := &ledger{
		node:        node,
		balances:    make([]int64, accounts),
		initial:     int64(accounts) * balance,
		maxInFlight: maxInFlight,
		channels:    map[string]*channel{},
	}
	for i := range l.balances {
		l.balances[i] = balance
	}
	for _, p := range peers {
		for _, t := range transports {
			l.channels[channelKey(p, t)] = &channel{
				peer:         p,
				transport:    t,
				nextSeq:      1,
				unacked:      map[uint64]*pending{},
				appliedAbove: map[uint64]transfer{},
				recent:       map[uint64]transfer{},
			}
		}
	}
	return l
}

// debit starts a transfer on ch: the money leaves the account now and stays
// counted as in flight until the receiver acknowledges it.
func (l *ledger) debit(ch *channel, fromAccount, toAccount int, amount int64, now time.Time) (transfer, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused || len(ch.unacked) >= l.maxInFlight || l.balances[fromAccount] < amount {
		return transfer{}, false
	}
	l.balances[fromAccount] -= amount
	t := transfer{Seq: ch.nextSeq, Account: toAccount, Amount: amount}
	ch.nextSeq++
	ch.unacked[t.Seq] = &pending{transfer: t, firstSent: now, lastSent: now}
	l.counters.Sent++
	return t, true
}

// credit applies a transfer received from ch's peer, once. It reports whether
// an acknowledgement is due (always, unless the message conflicts).
func (l *ledger) credit(ch *channel, t transfer) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.Account < 0 || t.Account >= len(l.balances) || t.Amount <= 0 || t.Seq == 0 {
		l.counters.Malformed++
		return false
	}
	applied := t.Seq <= ch.appliedUpTo
	if !applied {
		_, applied = ch.appliedAbove[t.Seq]
	}
	if applied {
		if prev, known := ch.recent[t.Seq]; known && prev != t {
			// The sender lost the state in which it sent prev and reused the
			// number: a cut that was not causally consistent.
			l.counters.Conflicts++
			return false
		}
		l.counters.Duplicates++
		return true
	}
	l.balances[t.Account] += t.Amount
	l.counters.Received++
	ch.appliedAbove[t.Seq] = t
	for {
		next, ok := ch.appliedAbove[ch.appliedUpTo+1]
		if !ok {
			break
		}
		delete(ch.appliedAbove, next.Seq)
		ch.appliedUpTo = next.Seq
	}
	ch.recent[t.Seq] = t
	if t.Seq > recentWindow {
		delete(ch.recent, t.Seq-recentWindow)
	}
	return true
}

func (l *ledger) ack(ch *channel, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := ch.unacked[seq]; ok {
		delete(ch.unacked, seq)
		l.counters.Acked++
	}
}

// due returns the unacknowledged transfers of ch not sent for longer than
// after, oldest first, and marks them sent now.
func (l *ledger) due(ch *channel, after time.Duration, now time.Time, retransmit bool) []transfer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []transfer
	for _, p := range ch.unacked {
		if now.Sub(p.lastSent) >= after {
			p.lastSent = now
			out = append(out, p.transfer)
		}
	}
	if retransmit {
		l.counters.Retransmits += uint64(len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// stalled reports whether ch has a transfer unacknowledged for longer than limit.
func (l *ledger) stalled(ch *channel, limit time.Duration, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ch.unacked {
		if now.Sub(p.firstSent) > limit {
			return true
		}
	}
	return false
}

func (l *ledger) count(f func(c *counters)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.counters)
}

func (l *ledger) setPaused(p bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = p
}

type channelStatus struct {
	Peer         string     `json:"peer"`
	Transport    string     `json:"transport"`
	NextSeq      uint64     `json:"nextSeq"`
	Unacked      []transfer `json:"unacked"`
	AppliedUpTo  uint64     `json:"appliedUpTo"`
	AppliedAbove []uint64   `json:"appliedAbove"`
}

type status struct {
	Node     string          `json:"node"`
	Balances []int64         `json:"balances"`
	Initial  int64           `json:"initial"`
	Paused   bool            `json:"paused"`
	Channels []channelStatus `json:"channels"`
	Counters counters        `json:"counters"`
}

func (l *ledger) snapshot() status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := status{
		Node:     l.node,
		Balances: append([]int64(nil), l.balances...),
		Initial:  l.initial,
		Paused:   l.paused,
		Counters: l.counters,
		Channels: []channelStatus{},
	}
	for _, ch := range l.channels {
		cs := channelStatus{
			Peer:         ch.peer,
			Transport:    ch.transport,
			NextSeq:      ch.nextSeq,
			AppliedUpTo:  ch.appliedUpTo,
			Unacked:      []transfer{},
			AppliedAbove: []uint64{},
		}
		for _, p := range ch.unacked {
			cs.Unacked = append(cs.Unacked, p.transfer)
		}
		sort.Slice(cs.Unacked, func(i, j int) bool { return cs.Unacked[i].Seq < cs.Unacked[j].Seq })
		for seq := range ch.appliedAbove {
			cs.AppliedAbove = append(cs.AppliedAbove, seq)
		}
		sort.Slice(cs.AppliedAbove, func(i, j int) bool { return cs.AppliedAbove[i] < cs.AppliedAbove[j] })
		s.Channels = append(s.Channels, cs)
	}
	sort.Slice(s.Channels, func(i, j int) bool {
		return channelKey(s.Channels[i].Peer, s.Channels[i].Transport) < channelKey(s.Channels[j].Peer, s.Channels[j].Transport)
	})
	return s
}

func (t transfer) String() string {
	return fmt.Sprintf("seq=%d account=%d amount=%d", t.Seq, t.Account, t.Amount)
}

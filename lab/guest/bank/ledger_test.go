package main

import (
	"testing"
	"time"
)

func TestCreditAppliesOnceAndDetectsReuse(t *testing.T) {
	l := newLedger("a", 2, 100, []string{"b"}, []string{"tcp"}, 8)
	ch := l.channels[channelKey("b", "tcp")]
	if !l.credit(ch, transfer{Seq: 1, Account: 0, Amount: 5}) || l.balances[0] != 105 {
		t.Fatalf("first credit not applied: %v", l.balances)
	}
	if !l.credit(ch, transfer{Seq: 1, Account: 0, Amount: 5}) || l.balances[0] != 105 || l.counters.Duplicates != 1 {
		t.Fatalf("duplicate applied twice: %v %+v", l.balances, l.counters)
	}
	if l.credit(ch, transfer{Seq: 1, Account: 1, Amount: 7}) || l.counters.Conflicts != 1 {
		t.Fatalf("reused sequence number not flagged: %+v", l.counters)
	}
	l.credit(ch, transfer{Seq: 3, Account: 1, Amount: 1})
	if ch.appliedUpTo != 1 || len(ch.appliedAbove) != 1 {
		t.Fatalf("gap not tracked: upTo=%d above=%v", ch.appliedUpTo, ch.appliedAbove)
	}
	l.credit(ch, transfer{Seq: 2, Account: 1, Amount: 1})
	if ch.appliedUpTo != 3 || len(ch.appliedAbove) != 0 {
		t.Fatalf("gap not closed: upTo=%d above=%v", ch.appliedUpTo, ch.appliedAbove)
	}
}

func TestDebitKeepsMoneyInFlightUntilAcked(t *testing.T) {
	l := newLedger("a", 1, 10, []string{"b"}, []string{"udp"}, 1)
	ch := l.channels[channelKey("b", "udp")]
	tr, ok := l.debit(ch, 0, 0, 4, time.Now())
	if !ok || l.balances[0] != 6 || len(ch.unacked) != 1 {
		t.Fatalf("debit: %v %v", ok, l.balances)
	}
	if _, ok := l.debit(ch, 0, 0, 1, time.Now()); ok {
		t.Fatal("debit beyond the in-flight window accepted")
	}
	l.ack(ch, tr.Seq)
	if len(ch.unacked) != 0 || l.counters.Acked != 1 {
		t.Fatalf("ack: %+v", l.counters)
	}
	if _, ok := l.debit(ch, 0, 0, 7, time.Now()); ok {
		t.Fatal("overdraft accepted")
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	for _, line := range []string{"", "T a 1 0", "T a 0 0 5\n", "T a 1 -1 5", "T a 1 0 0", "X a 1", "A a x", "A a 1 2"} {
		if _, err := decode(line); err == nil {
			t.Errorf("%q decoded", line)
		}
	}
	m, err := decode(encodeTransfer("n1", transfer{Seq: 9, Account: 2, Amount: 30}))
	if err != nil || m.kind != 'T' || m.node != "n1" || m.seq != 9 || m.acct != 2 || m.amount != 30 {
		t.Fatalf("round trip: %+v %v", m, err)
	}
}

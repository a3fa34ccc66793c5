package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The wire format is one message per line (TCP) or per datagram (UDP):
//
//	T <sender> <seq> <account> <amount>   a transfer into <account> of the receiver
//	A <receiver> <seq>                    the receiver applied (or already had) <seq>
//
// Text keeps the traffic readable in tshark captures of the lab bridges.

const maxMessage = 256

type message struct {
	kind   byte // 'T' or 'A'
	node   string
	seq    uint64
	acct   int
	amount int64
}

func encodeTransfer(sender string, t transfer) string {
	return fmt.Sprintf("T %s %d %d %d\n", sender, t.Seq, t.Account, t.Amount)
}

func encodeAck(receiver string, seq uint64) string {
	return fmt.Sprintf("A %s %d\n", receiver, seq)
}

var errMalformed = errors.New("malformed message")

func decode(line string) (message, error) {
	if len(line) > maxMessage {
		return message{}, errMalformed
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return message{}, errMalformed
	}
	seq, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || seq == 0 {
		return message{}, errMalformed
	}
	switch {
	case f[0] == "T" && len(f) == 5:
		acct, err1 := strconv.Atoi(f[3])
		amount, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || acct < 0 || amount <= 0 {
			return message{}, errMalformed
		}
		return message{kind: 'T', node: f[1], seq: seq, acct: acct, amount: amount}, nil
	case f[0] == "A" && len(f) == 3:
		return message{kind: 'A', node: f[1], seq: seq}, nil
	}
	return message{}, errMalformed
}

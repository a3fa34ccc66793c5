package main

import (
	"bufio"
	"log"
	"net"
	"sync"
	"time"
)

const transferPort = "7071"

type bank struct {
	l     *ledger
	peers map[string]string // name -> IP

	// One outgoing TCP connection per peer; nil while (re)connecting.
	tcpMu    sync.Mutex
	tcpConns map[string]net.Conn
	// When each connection came up: a new connection gets the full stall limit.
	tcpSince map[string]time.Time
	udp      *net.UDPConn
}

// receiveTCP serves one connection opened by a peer: transfers come in,
// acknowledgements go back on the same connection.
func (b *bank) receiveTCP(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, maxMessage*2)
	w := bufio.NewWriter(c)
	for {
		line, err := readLine(r)
		if err != nil {
			return
		}
		m, err := decode(line)
		ch := b.channelFor(m, "tcp")
		if err != nil || m.kind != 'T' || ch == nil {
			// A peer speaking nonsense loses its connection, not the bank.
			b.l.count(func(c *counters) { c.Malformed++ })
			return
		}
		if b.l.credit(ch, transfer{Seq: m.seq, Account: m.acct, Amount: m.amount}) {
			if _, err := w.WriteString(encodeAck(b.l.node, m.seq)); err != nil {
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// readLine reads one line and refuses lines longer than a message can be.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return string(line), nil
}

func (b *bank) channelFor(m message, transport string) *channel {
	if _, known := b.peers[m.node]; !known {
		return nil
	}
	return b.l.channels[channelKey(m.node, transport)]
}

// connectTCP keeps a connection to peer open, redialling after failures, and
// resends everything unacknowledged on each new connection: after a restore
// the old connection may be gone while transfers are still in flight.
func (b *bank) connectTCP(peer string) {
	ch := b.l.channels[channelKey(peer, "tcp")]
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(b.peers[peer], transferPort), 2*time.Second)
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		b.l.count(func(c *counters) { c.Connects++ })
		b.tcpMu.Lock()
		b.tcpConns[peer] = c
		b.tcpSince[peer] = time.Now()
		b.tcpMu.Unlock()
		for _, t := range b.l.due(ch, 0, time.Now(), true) {
			b.sendTCP(peer, t)
		}
		r := bufio.NewReaderSize(c, maxMessage*2)
		for {
			line, err := readLine(r)
			if err != nil {
				break
			}
			m, err := decode(line)
			if err != nil || m.kind != 'A' || m.node != peer {
				b.l.count(func(c *counters) { c.Malformed++ })
				break
			}
			b.l.ack(ch, m.seq)
		}
		b.tcpMu.Lock()
		delete(b.tcpConns, peer)
		b.tcpMu.Unlock()
		c.Close()
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bank) sendTCP(peer string, t transfer) {
	b.tcpMu.Lock()
	c := b.tcpConns[peer]
	b.tcpMu.Unlock()
	if c == nil {
		return // sent when the connection is back
	}
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(encodeTransfer(b.l.node, t))); err != nil {
		c.Close()
	}
}

// dropTCP closes the connection to peer if it has been up longer than the
// stall limit; connectTCP then redials and resends what is unacknowledged.
func (b *bank) dropTCP(peer string, now time.Time) {
	b.tcpMu.Lock()
	defer b.tcpMu.Unlock()
	if c := b.tcpConns[peer]; c != nil && now.Sub(b.tcpSince[peer]) > tcpStallLimit {
		log.Printf("tcp to %s: no acknowledgement for %v; reconnecting", peer, tcpStallLimit)
		c.Close()
	}
}

func (b *bank) sendUDP(peer string, t transfer) {
	addr := &net.UDPAddr{IP: net.ParseIP(b.peers[peer]), Port: 7071}
	_, _ = b.udp.WriteToUDP([]byte(encodeTransfer(b.l.node, t)), addr)
}

func (b *bank) send(ch *channel, t transfer) {
	if ch.transport == "tcp" {
		b.sendTCP(ch.peer, t)
	} else {
		b.sendUDP(ch.peer, t)
	}
}

// serveUDP handles both directions on one socket: transfers are applied and
// acknowledged to their source address, acknowledgements settle our sends.
func (b *bank) serveUDP() {
	buf := make([]byte, maxMessage+1)
	for {
		n, from, err := b.udp.ReadFromUDP(buf)
		if err != nil {
			log.Printf("udp: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		m, err := decode(string(buf[:n]))
		ch := b.channelFor(m, "udp")
		if err != nil || ch == nil || b.peers[m.node] != from.IP.String() {
			b.l.count(func(c *counters) { c.Malformed++ })
			continue
		}
		if m.kind == 'A' {
			b.l.ack(ch, m.seq)
			continue
		}
		if b.l.credit(ch, transfer{Seq: m.seq, Account: m.acct, Amount: m.amount}) {
			_, _ = b.udp.WriteToUDP([]byte(encodeAck(b.l.node, m.seq)), from)
		}
	}
}

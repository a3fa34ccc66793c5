// bank is the lab's guest workload: accounts spread over VMs that keep moving
// money to each other over TCP and UDP. Money leaves an account when a transfer
// is sent and stays "in flight" at the sender until the receiver acknowledges
// it, so at any consistent cut
//
//	sum(balances) + sum(unacknowledged transfers the receiver has not applied) = initial total
//
// and a cut that is not causally consistent (a receipt whose sending is not in
// the sender's state) shows up as a receiver having applied a sequence number
// the sender never issued, or as a conflict when the sender reuses it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	node := flag.String("node", "", "this node's name")
	peersFlag := flag.String("peers", "", "other nodes as name=ip,name=ip")
	accounts := flag.Int("accounts", 4, "accounts on this node")
	balance := flag.Int64("balance", 1000, "initial balance of each account")
	interval := flag.Duration("interval", 20*time.Millisecond, "time between transfers")
	maxInFlight := flag.Int("max-in-flight", 32, "unacknowledged transfers per channel before the sender waits")
	statusAddr := flag.String("status", ":7070", "address of the HTTP status endpoint")
	transportsFlag := flag.String("transports", "tcp,udp", "transports to move money over")
	heartbeat := flag.Duration("heartbeat", 0, "write the guest's clock to the console this often (0: never)")
	flag.Parse()

	peers, err := parsePeers(*peersFlag)
	if err != nil || *node == "" || *accounts < 1 || *balance < 1 || *maxInFlight < 1 {
		fmt.Fprintf(os.Stderr, "bank: bad arguments: node=%q peers=%q: %v\n", *node, *peersFlag, err)
		os.Exit(2)
	}
	transports := strings.Split(*transportsFlag, ",")
	for _, t := range transports {
		if t != "tcp" && t != "udp" {
			fmt.Fprintf(os.Stderr, "bank: unknown transport %q\n", t)
			os.Exit(2)
		}
	}
	names := make([]string, 0, len(peers))
	for n := range peers {
		names = append(names, n)
	}
	sort.Strings(names)

	b := &bank{
		l:        newLedger(*node, *accounts, *balance, names, transports, *maxInFlight),
		peers:    peers,
		tcpConns: map[string]net.Conn{},
		tcpSince: map[string]time.Time{},
	}
	tcpListener, err := net.Listen("tcp", ":"+transferPort)
	if err != nil {
		log.Fatalf("bank: %v", err)
	}
	b.udp, err = net.ListenUDP("udp", &net.UDPAddr{Port: 7071})
	if err != nil {
		log.Fatalf("bank: %v", err)
	}
	go func() {
		for {
			c, err := tcpListener.Accept()
			if err != nil {
				log.Fatalf("bank: accept: %v", err)
			}
			go b.receiveTCP(c)
		}
	}()
	go b.serveUDP()
	for _, p := range names {
		go b.connectTCP(p)
	}
	go b.retransmit()
	go b.transferLoop(*interval, *accounts)
	if *heartbeat > 0 {
		go beat(*heartbeat)
	}

	http.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.l.snapshot())
	})
	http.HandleFunc("POST /pause", func(w http.ResponseWriter, _ *http.Request) {
		b.l.setPaused(true)
		w.WriteHeader(http.StatusNoContent)
	})
	http.HandleFunc("POST /unpause", func(w http.ResponseWriter, _ *http.Request) {
		b.l.setPaused(false)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("bank %s: %d accounts of %d, peers %v, transports %v", *node, *accounts, *balance, peers, transports)
	log.Fatal(http.ListenAndServe(*statusAddr, nil))
}

func parsePeers(s string) (map[string]string, error) {
	peers := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			continue
		}
		name, ip, ok := strings.Cut(item, "=")
		if !ok || name == "" || net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("peer %q is not name=ip", item)
		}
		peers[name] = ip
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("no peers")
	}
	return peers, nil
}

func (b *bank) transferLoop(interval time.Duration, accounts int) {
	keys := make([]string, 0, len(b.l.channels))
	for k := range b.l.channels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for range time.Tick(interval) {
		ch := b.l.channels[keys[rand.IntN(len(keys))]]
		amount := 1 + rand.Int64N(100)
		t, ok := b.l.debit(ch, rand.IntN(accounts), rand.IntN(accounts), amount, time.Now())
		if ok {
			b.send(ch, t)
		}
	}
}

// beat writes "hb <ms>" to stdout, the guest's console, per tick: milliseconds
// of the guest's monotonic clock since the bank started. QEMU writes the console
// to a file on the host, where the lab reads it as it grows. The host's clock
// runs on while the guest is paused and the guest's does not, so the growth of
// host time minus guest time between two beats is how long the guest was paused,
// told apart from a guest that ran but was seen late.
func beat(every time.Duration) {
	start := time.Now()
	for range time.Tick(every) {
		_, _ = fmt.Fprintf(os.Stdout, "hb %d\n", time.Since(start).Milliseconds())
	}
}

// retransmit resends transfers whose acknowledgement is overdue: UDP loses
// datagrams, and after a restore a TCP connection may have vanished with
// transfers in it. The receiver applies each transfer once, so resending is safe.
// tcpStallLimit is how long a TCP channel may go without settling a transfer
// before its connection is replaced. A VM restored from an image holds TCP
// state its peer may no longer share; such a connection can hang for many
// minutes before the kernel gives up on it.
const tcpStallLimit = 10 * time.Second

func (b *bank) retransmit() {
	for range time.Tick(250 * time.Millisecond) {
		now := time.Now()
		for _, ch := range b.l.channels {
			after := time.Second
			if ch.transport == "tcp" {
				after = 3 * time.Second
			}
			for _, t := range b.l.due(ch, after, now, true) {
				b.send(ch, t)
			}
			if ch.transport == "tcp" && b.l.stalled(ch, tcpStallLimit, now) {
				b.dropTCP(ch.peer, now)
			}
		}
	}
}

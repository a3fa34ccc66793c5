package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The control protocol, one line each way:
//
//	release <mac>                    replay <mac>'s queue, then pass its frames → "ok <frames replayed>"
//	release-all                      replay every queue, then pass everything   → "ok <frames replayed>"
//	idle <mac> <quiet-ms> <max-ms>   wait for a lull in frames for <mac>        → "ok"
//	stats                            → "ok held_frames=… held_bytes=… peak_bytes=… …"
//	shutdown                         → "ok", then the process exits (the tap goes with it)
//
// Unasked: "event limit <bytes>" when the limit is reached. A line that is not
// one of these gets "err <why>" and closes that connection, never the process.
const maxLine = 256

type controlServer struct {
	listener net.Listener
	buffer   *buffer
	mu       sync.Mutex
	conns    map[*controlConn]bool
}

type controlConn struct {
	conn net.Conn
	mu   sync.Mutex
}

func (c *controlConn) send(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.conn.Write([]byte(line + "\n"))
}

func listenControl(path string, b *buffer) (*controlServer, error) {
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &controlServer{listener: listener, buffer: b, conns: map[*controlConn]bool{}}, nil
}

func (s *controlServer) serve() {
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		c := &controlConn{conn: conn}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *controlServer) broadcast(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		go c.send(line)
	}
}

func (s *controlServer) handle(c *controlConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.conn.Close()
	}()
	scanner := bufio.NewScanner(c.conn)
	scanner.Buffer(make([]byte, maxLine), maxLine)
	for scanner.Scan() {
		reply, err := s.execute(strings.Fields(scanner.Text()))
		if err != nil {
			c.send("err " + err.Error())
			return
		}
		c.send("ok" + reply)
		if reply == shutdownReply {
			os.Exit(0)
		}
	}
	if errors.Is(scanner.Err(), bufio.ErrTooLong) {
		c.send(fmt.Sprintf("err line longer than %d bytes", maxLine))
	}
}

const shutdownReply = " shutting down"

func (s *controlServer) execute(words []string) (string, error) {
	if len(words) == 0 {
		return "", errors.New("empty line")
	}
	args := words[1:]
	switch words[0] {
	case "release":
		if len(args) != 1 {
			return "", errors.New("usage: release <mac>")
		}
		dst, err := parseMac(args[0])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(" %d", s.buffer.release(dst)), nil
	case "release-all":
		if len(args) != 0 {
			return "", errors.New("usage: release-all")
		}
		return fmt.Sprintf(" %d", s.buffer.releaseAll()), nil
	case "idle":
		if len(args) != 3 {
			return "", errors.New("usage: idle <mac> <quiet-ms> <max-ms>")
		}
		dst, err := parseMac(args[0])
		if err != nil {
			return "", err
		}
		quiet, err1 := strconv.ParseUint(args[1], 10, 16)
		max, err2 := strconv.ParseUint(args[2], 10, 16)
		if err1 != nil || err2 != nil {
			return "", errors.New("idle: quiet-ms and max-ms must be integers below 65536")
		}
		s.buffer.idle(dst, time.Duration(quiet)*time.Millisecond, time.Duration(max)*time.Millisecond)
		return "", nil
	case "stats":
		if len(args) != 0 {
			return "", errors.New("usage: stats")
		}
		return " " + s.buffer.stats(), nil
	case "shutdown":
		return shutdownReply, nil
	default:
		return "", fmt.Errorf("unknown command %q", words[0])
	}
}

func parseMac(text string) (mac, error) {
	var m mac
	hw, err := net.ParseMAC(text)
	if err != nil || len(hw) != len(m) {
		return m, fmt.Errorf("not an Ethernet MAC: %q", text)
	}
	copy(m[:], hw)
	return m, nil
}

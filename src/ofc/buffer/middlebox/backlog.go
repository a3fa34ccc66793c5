package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"time"
)

// Replaying into the bridge, the loss to avoid is not at the tap: writing to
// it never blocks. ovs-vswitchd's userspace datapath reads the tap through a
// packet socket with the default receive buffer (about 200 KB, some 70
// full-size frames), and that socket drops whatever arrives while it is full
// (ss -0 -m counts them as `d`). A fixed pace cannot know how long the
// bridge's thread is away on a loaded host; the socket's backlog can tell:
// /proc/net/packet lists every packet socket of this network namespace with
// its bound interface and the bytes it has queued (Rmem), so the replay
// writes a little, then waits until the reader has caught up.
const (
	// replayStepBytes is how much is written between two looks at the
	// reader's backlog (frame bytes plus perFrameOverhead each).
	replayStepBytes = 64 << 10
	// backlogLowBytes is the backlog below which the next step is written:
	// low + one step stays well under the default receive buffer.
	backlogLowBytes = 64 << 10
	// perFrameOverhead is a generous estimate of what a queued frame costs
	// beyond its bytes (the kernel counts the whole socket buffer).
	perFrameOverhead = 2048
	// backlogMaxWait bounds one wait: a bridge that reads nothing for this
	// long is not coming back soon, and a release must not hang on it.
	backlogMaxWait = time.Second
	backlogPoll    = 200 * time.Microsecond
)

// readerBacklog returns the bytes queued in the packet sockets bound to
// interface ifindex (the largest, if there are several), and false when
// there is none or /proc/net/packet cannot be read.
func readerBacklog(ifindex int) (int, bool) {
	data, err := os.ReadFile("/proc/net/packet")
	if err != nil {
		return 0, false
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Scan() // sk RefCnt Type Proto Iface R Rmem User Inode
	found, largest := false, 0
	for scanner.Scan() {
		fields := bytes.Fields(scanner.Bytes())
		if len(fields) < 7 {
			continue
		}
		iface, err1 := strconv.Atoi(string(fields[4]))
		rmem, err2 := strconv.Atoi(string(fields[6]))
		if err1 != nil || err2 != nil || iface != ifindex {
			continue
		}
		found = true
		largest = max(largest, rmem)
	}
	return largest, found
}

// waitForReader waits until the reader's backlog is at most backlogLowBytes,
// or backlogMaxWait has passed. Without a reader to watch it returns at once.
func waitForReader(backlog func() (int, bool)) {
	deadline := time.Now().Add(backlogMaxWait)
	for {
		queued, ok := backlog()
		if !ok || queued <= backlogLowBytes || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(backlogPoll)
	}
}

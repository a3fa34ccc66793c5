package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// etherTypeServiceTag marks a frame the bridge diverted: the hold flow pushes
// an 802.1ad tag whose VLAN id is the frame's ingress port. Anything else
// that reaches the tap (NORMAL floods broadcasts and unknown unicast to every
// port, the buffer port included) is not ours and is ignored.
const etherTypeServiceTag = 0x88a8

// replayBatch frames are written between two checks of the replay pace.
const replayBatch = 32

type mac [6]byte

func (m mac) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

type counters struct {
	framesHeld, bytesHeld         int64
	framesReplayed, bytesReplayed int64
	framesPassed, bytesPassed     int64
	ignored, writeErrors          int64
}

// buffer holds diverted frames per destination MAC in arrival order. One
// mutex orders everything written to the tap: a queue being replayed and a
// frame passed through for the same MAC can never interleave.
type buffer struct {
	mu         sync.Mutex
	limit      int64
	out        io.Writer
	queues     map[mac][][]byte
	passing    map[mac]bool
	passAll    bool
	heldBytes  int64
	peakBytes  int64
	heldFrames int64
	// replayPace is the time one frame of a replay may take at the most
	// (0: as fast as the tap takes them). Writing to the tap never blocks, and
	// ovs-vswitchd reads the port through a socket that drops what it cannot
	// take in time, so a queue replayed faster than the bridge reads is lost.
	replayPace time.Duration
	// readerBacklog reports the bytes the bridge has not yet read from the
	// tap (see backlog.go); nil: do not watch.
	readerBacklog func() (int, bool)
	lastFrame     map[mac]time.Time
	counters      counters
	// onLimit reports that the limit was reached; called once, without the lock.
	onLimit func(line string)
}

func newBuffer(limit int64, replayPace time.Duration, out io.Writer) *buffer {
	return &buffer{
		limit:      limit,
		replayPace: replayPace,
		out:        out,
		queues:     map[mac][][]byte{},
		passing:    map[mac]bool{},
		lastFrame:  map[mac]time.Time{},
	}
}

func (b *buffer) readFrames(in io.Reader) error {
	frame := make([]byte, 65536)
	for {
		n, err := in.Read(frame)
		if err != nil {
			return err
		}
		b.handle(append([]byte(nil), frame[:n]...))
	}
}

func (b *buffer) handle(frame []byte) {
	if len(frame) < 18 || int(frame[12])<<8|int(frame[13]) != etherTypeServiceTag {
		b.mu.Lock()
		b.counters.ignored++
		b.mu.Unlock()
		return
	}
	var dst mac
	copy(dst[:], frame[:6])
	size := int64(len(frame))
	limitReached := false
	b.mu.Lock()
	b.lastFrame[dst] = time.Now()
	switch {
	case b.passAll || b.passing[dst]:
		b.pass(frame)
	case b.heldBytes+size > b.limit:
		// Stop holding instead of dropping or growing: release every queue
		// in order, then this frame. The OFC aborts the snapshot on the event.
		b.releaseEverything()
		b.pass(frame)
		limitReached = true
	default:
		b.queues[dst] = append(b.queues[dst], frame)
		b.heldBytes += size
		b.heldFrames++
		b.counters.framesHeld++
		b.counters.bytesHeld += size
		if b.heldBytes > b.peakBytes {
			b.peakBytes = b.heldBytes
		}
	}
	b.mu.Unlock()
	if limitReached && b.onLimit != nil {
		b.onLimit(fmt.Sprintf("event limit %d", b.limit))
	}
}

// release replays one MAC's queue in order and lets its later frames pass.
func (b *buffer) release(dst mac) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.replay(dst)
	b.passing[dst] = true
	return n
}

func (b *buffer) releaseAll() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.releaseEverything()
}

// releaseEverything expects the lock held.
func (b *buffer) releaseEverything() int {
	n := 0
	for dst := range b.queues {
		n += b.replay(dst)
	}
	b.passAll = true
	return n
}

// replay expects the lock held.
func (b *buffer) replay(dst mac) int {
	queue := b.queues[dst]
	delete(b.queues, dst)
	started := time.Now()
	sinceLook := 0
	for i, frame := range queue {
		// Paced in batches: sleeping per frame would cost more than the frame.
		if b.replayPace > 0 && i%replayBatch == replayBatch-1 {
			if ahead := time.Duration(i+1)*b.replayPace - time.Since(started); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if b.readerBacklog != nil && sinceLook+len(frame)+perFrameOverhead > replayStepBytes {
			waitForReader(b.readerBacklog)
			sinceLook = 0
		}
		sinceLook += len(frame) + perFrameOverhead
		size := int64(len(frame))
		b.heldBytes -= size
		b.heldFrames--
		if b.write(frame) {
			b.counters.framesReplayed++
			b.counters.bytesReplayed += size
		}
	}
	return len(queue)
}

// pass expects the lock held.
func (b *buffer) pass(frame []byte) {
	if b.write(frame) {
		b.counters.framesPassed++
		b.counters.bytesPassed += int64(len(frame))
	}
}

func (b *buffer) write(frame []byte) bool {
	if _, err := b.out.Write(frame); err != nil {
		b.counters.writeErrors++
		return false
	}
	return true
}

// idle waits until no frame for dst has arrived for quiet, or max has passed.
func (b *buffer) idle(dst mac, quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	for {
		b.mu.Lock()
		silent := time.Since(b.lastFrame[dst])
		b.mu.Unlock()
		if silent >= quiet || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(quiet - silent)
	}
}

func (b *buffer) stats() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counters
	return fmt.Sprintf(
		"held_frames=%d held_bytes=%d peak_bytes=%d limit=%d frames_held=%d bytes_held=%d "+
			"frames_replayed=%d bytes_replayed=%d frames_passed=%d bytes_passed=%d ignored=%d write_errors=%d",
		b.heldFrames, b.heldBytes, b.peakBytes, b.limit, c.framesHeld, c.bytesHeld,
		c.framesReplayed, c.bytesReplayed, c.framesPassed, c.bytesPassed, c.ignored, c.writeErrors)
}

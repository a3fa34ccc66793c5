// violin-middlebox: the datapath buffer tier of the OFC (DESIGN section 6,
// the paper's proposal). It owns a tap device that the OFC adds to a bridge as
// the buffer port. The bridge diverts Type-3 frames to it, each carrying its
// original ingress port in an 802.1ad tag; the middlebox keeps them per
// destination MAC, in arrival order, within a hard byte limit, and on command
// writes one MAC's queue back to the tap at line rate, then passes later frames
// for that MAC straight back. The bridge's replay flow restores the ingress
// port from the tag, so MAC learning sees the sender on its real port.
//
// Control: a unix socket, one line per request and one line per reply
// ("ok ..." or "err ..."); the limit event is sent unasked as
// "event limit <bytes>" to every control connection. See protocol.go.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	tapName := flag.String("tap", "", "name of the tap device to create (at most 15 bytes)")
	control := flag.String("control", "", "path of the control unix socket")
	limit := flag.Int64("limit", 0, "hard limit on bytes held (frames held at once)")
	replayRate := flag.Int("replay-rate", 0, "frames per second at most when replaying a queue (0: no pacing)")
	flag.Parse()
	if *tapName == "" || *control == "" || *limit <= 0 {
		fmt.Fprintln(os.Stderr, "usage: violin-middlebox -tap NAME -control PATH -limit BYTES [-replay-rate FPS]")
		os.Exit(2)
	}
	tap, err := openTap(*tapName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "violin-middlebox: %v\n", err)
		os.Exit(1)
	}
	var pace time.Duration
	if *replayRate > 0 {
		pace = time.Second / time.Duration(*replayRate)
	}
	buffer := newBuffer(*limit, pace, tap)
	if iface, err := net.InterfaceByName(*tapName); err == nil {
		buffer.readerBacklog = func() (int, bool) { return readerBacklog(iface.Index) }
	} else {
		fmt.Fprintf(os.Stderr, "violin-middlebox: replaying without watching the bridge's backlog: %v\n", err)
	}
	server, err := listenControl(*control, buffer)
	if err != nil {
		fmt.Fprintf(os.Stderr, "violin-middlebox: %v\n", err)
		os.Exit(1)
	}
	buffer.onLimit = server.broadcast
	releaseOnExit(buffer)
	// The OFC waits for this line before it adds the tap to the bridge.
	fmt.Println("ready")
	go server.serve()
	if err := buffer.readFrames(tap); err != nil {
		fmt.Fprintf(os.Stderr, "violin-middlebox: reading %s: %v\n", *tapName, err)
		os.Exit(1)
	}
}

// releaseOnExit writes every held frame back before the process goes, on
// SIGTERM and SIGINT and when the OFC that started it dies (the kernel sends
// SIGTERM then): a held frame must never be lost with the process. The
// bridge keeps the replay flow (fail mode secure), so the frames are delivered.
func releaseOnExit(b *buffer) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "violin-middlebox: PR_SET_PDEATHSIG: %v\n", errno)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		b.releaseAll()
		os.Exit(0)
	}()
}

package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

const (
	// txQueueLength is how many frames the kernel queues for us before it
	// drops: a burst diverted at line rate must wait here while we read.
	txQueueLength = 10000
	// tapMTU leaves room for the 802.1ad tag the hold flow pushes onto
	// frames of up to 9000-byte (jumbo) MTUs. At the usual 1500, a full-size
	// frame plus the tag exceeds the tap's MTU, and the kernel refuses to send
	// it to the tap (a packet socket allows 4 extra bytes only for 802.1Q):
	// ovs-vswitchd's output to the buffer port would lose every full-size
	// frame, e.g. every full TCP segment, without a trace in our counters.
	tapMTU     = 9216
	iffTap     = 0x0002
	iffNoPi    = 0x1000
	tunSetIff  = 0x400454ca
	ifNameSize = 16
)

// ifReq is struct ifreq as TUNSETIFF reads it: the name, then the flags.
type ifReq struct {
	name  [ifNameSize]byte
	flags uint16
	_     [22]byte
}

// openTap creates a tap device owned by this process (it disappears when the
// process exits) and sets it up. Frames come without packet information.
func openTap(name string) (*os.File, error) {
	if len(name) >= ifNameSize {
		return nil, fmt.Errorf("tap name %q is longer than %d bytes", name, ifNameSize-1)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	var req ifReq
	copy(req.name[:], name)
	req.flags = iffTap | iffNoPi
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	if err := setInterfaceInt(name, syscall.SIOCSIFTXQLEN, "txqueuelen", txQueueLength); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := setInterfaceInt(name, syscall.SIOCSIFMTU, "mtu", tapMTU); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := setUp(name); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// setUp sets IFF_UP on the interface, as `ip link set NAME up` does.
func setUp(name string) error {
	sock, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket for SIOCSIFFLAGS: %w", err)
	}
	defer syscall.Close(sock)
	var req ifReq
	copy(req.name[:], name)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(sock), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("SIOCGIFFLAGS %s: %w", name, errno)
	}
	req.flags |= syscall.IFF_UP
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(sock), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("SIOCSIFFLAGS %s: %w", name, errno)
	}
	return nil
}

// ifReqInt is struct ifreq with one int member (ifr_qlen, ifr_mtu).
type ifReqInt struct {
	name  [ifNameSize]byte
	value int32
	_     [20]byte
}

// setInterfaceInt sets one int attribute of the interface, as
// `ip link set NAME txqueuelen N` (SIOCSIFTXQLEN) or `mtu N` (SIOCSIFMTU) do.
func setInterfaceInt(name string, request uintptr, what string, value int32) error {
	sock, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket for setting %s: %w", what, err)
	}
	defer syscall.Close(sock)
	var req ifReqInt
	copy(req.name[:], name)
	req.value = value
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(sock), request, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("setting %s of %s to %d: %w", what, name, value, errno)
	}
	return nil
}

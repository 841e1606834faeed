package bench

import "fmt"

// Kernel log records for floods, written as user space writes them to
// /dev/kmsg: "<level>message\n", one write a record.

// IOErrorRecord is a real-format block-layer I/O error on dev at sector:
// the line the agent's blk-io-error rule raises a disk.io_error from.
func IOErrorRecord(dst []byte, level int, dev string, sector int64) []byte {
	return fmt.Appendf(dst, "<%d>blk_update_request: I/O error, dev %s, sector %d op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0\n",
		level, dev, sector)
}

// BenignRecord is the i-th of a rotation of real-format kernel messages
// that hold no hardware fault (an AppArmor denial, a martian packet, a SYN
// flood, a bridge port state change): the noise a busy host logs, which no
// rule may match.
func BenignRecord(dst []byte, level int, i int64) []byte {
	switch i % 4 {
	case 0:
		return fmt.Appendf(dst, "<%d>audit: type=1400 audit(1700000000.%03d:%d): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"/usr/sbin/chronyd\" name=\"/proc/%d/status\" pid=%d comm=\"chronyd\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0\n",
			level, i%1000, i, 1000+i%30000, 900+i%100)
	case 1:
		return fmt.Appendf(dst, "<%d>IPv4: martian source 10.1.%d.%d from 10.1.0.1, on dev eth0\n", level, i/256%256, i%256)
	case 2:
		return fmt.Appendf(dst, "<%d>TCP: request_sock_TCP: Possible SYN flooding on port %d. Sending cookies.  Check SNMP counters.\n", level, 1024+i%60000)
	default:
		return fmt.Appendf(dst, "<%d>br0: port %d(veth%06x) entered forwarding state\n", level, 1+i%16, i%0xffffff)
	}
}

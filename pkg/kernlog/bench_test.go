package kernlog

import (
	"bytes"
	"testing"
)

func BenchmarkParseKmsg(b *testing.B) {
	for _, c := range []struct{ name, rec string }{
		{"plain", "6,3964,206764307,-;nvidia-nvswitch2: open (major=510)\n"},
		{"dict+escapes", "3,1234,5678,-;pcieport 0000:00:1c.0: AER: \\x09Uncorrected (Fatal) error received: 0000:01:00.0\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			rec := []byte(c.rec)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseKmsg(rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkScanner reads about 1 MiB of real records per iteration.
func BenchmarkScanner(b *testing.B) {
	for _, c := range []struct {
		name string
		file string
		f    Format
	}{
		{"kmsg", "live_kmsg.txt", FormatKmsg},
		{"kmsg-auto", "live_kmsg.txt", FormatAuto},
		{"dmesg-x-iso-auto", "gpud_dmesg_x_iso.log", FormatAuto},
		{"syslog-auto", "loghub_linux_2k_excerpt.log", FormatAuto},
		{"ctime", "gpud_dmesg_ctime.log", FormatDmesgCtime},
	} {
		b.Run(c.name, func(b *testing.B) {
			one := readTestdata(b, c.file)
			if !bytes.HasSuffix(one, []byte{'\n'}) {
				one = append(one, '\n')
			}
			data := bytes.Repeat(one, (1<<20)/len(one)+1)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				sc := NewScanner(bytes.NewReader(data), c.f)
				for sc.Scan() {
					n++
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkParseLineCaller: lines with a printk caller id after each kind
// of timestamp, against the same lines without it.
func BenchmarkParseLineCaller(b *testing.B) {
	for _, c := range []struct{ name, line string }{
		{"iso", "2026-02-13T12:47:34.505714+01:00 lisa kernel: mce: [Hardware Error]: Machine check events logged"},
		{"iso-caller", "2026-02-13T12:47:34.505714+01:00 [T449218] mce: [Hardware Error]: Machine check events logged"},
		{"dmesg", "[   12.345678] mce: [Hardware Error]: Machine check events logged"},
		{"dmesg-caller", "[   12.345678] [    T1] mce: [Hardware Error]: Machine check events logged"},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := testParser()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := p.ParseLine(c.line, FormatAuto); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package smart

import (
	"bytes"
	"path/filepath"
	"testing"
)

func BenchmarkParseSmartctlJSON(b *testing.B) {
	for _, bc := range []struct{ name, file string }{
		// smartctl -a of a failing HDD with error and self-test logs (30 KB)
		{"ata-a-failing", "scrutiny/webapp/backend/pkg/models/testdata/smart-fail2.json"},
		// smartctl_exporter's -i -H -A -l error of a SATA SSD (13 KB)
		{"ata-ssd", "smartctl_exporter/testdata/sat-Intel_S4510_S4610_S4500_S4600_Series_SSDs-INTEL_SSDSC2KB019T8-sdr.json"},
		{"nvme", "netdata/type-nvme/device-nvme1.json"},
		{"scsi", "smartctl_exporter/testdata/HITACHI_H109060SESUN600G_10.json"},
	} {
		data := readAll(b, filepath.Join(corpusDir, bc.file))
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseSmartctlJSON(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseNVMeCLIJSON(b *testing.B) {
	data := readAll(b, filepath.Join(nvmeCLIDir, "netdata/nvme-smart-log.v2.11.json"))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNVMeCLIJSON(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseATASmartPages(b *testing.B) {
	blob := readBlob(b, filepath.Join(blobDir, "Maxtor_6Y120P0.bin")) // 26 attributes
	b.SetBytes(2 * ATAPageSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseATASmartPages(blob.data, blob.thresholds); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseNVMeSmartLog(b *testing.B) {
	page := encodeNVMeSmartLog(&NVMeHealth{TemperatureC: 40, AvailableSpare: 100, PowerOnHours: 1000, TemperatureSensorsC: []int{40, 41}})
	b.SetBytes(NVMeSmartLogSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNVMeSmartLog(page); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssess(b *testing.B) {
	r := mustParse(b, filepath.Join(corpusDir, "scrutiny/webapp/backend/pkg/models/testdata/smart-fail2.json"))
	b.ReportAllocs()
	for b.Loop() {
		if len(Assess(r)) == 0 {
			b.Fatal("no findings")
		}
	}
}

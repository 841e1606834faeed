package replay

import (
	"bytes"
	"testing"
)

// BenchmarkReadBackblaze: one file's rows in file order (the parse alone).
func BenchmarkReadBackblaze(b *testing.B) {
	data := readTestFile(b, bbHealthy)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := ReadBackblaze(bytes.NewReader(data), func(Row) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayBackblaze: the same rows indexed, sorted and read again
// by drive: what ordering costs over the plain parse.
func BenchmarkReplayBackblaze(b *testing.B) {
	data := readTestFile(b, bbHealthy)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := replayBackblaze([]bbSource{{name: "h", r: bytes.NewReader(data), size: int64(len(data))}}, func(Row) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalBackblaze: the whole slice through the baseline rule.
func BenchmarkEvalBackblaze(b *testing.B) {
	for b.Loop() {
		if _, err := EvalBackblaze([]string{bbFailed, bbHealthy, bbDaily}, func() Evaluator { return BaselineRule{} }, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalKernelLog: testdata/kernel_logs (every kind of labeled
// source, 104 lines and 8 blocks) against the line records alone, the
// evaluation as it was before the other sources; both with corpusMatch.
func BenchmarkEvalKernelLog(b *testing.B) {
	for _, c := range []struct {
		name  string
		paths []string
	}{
		{"line-records", []string{"testdata/lkml_sample.jsonl"}},
		{"corpus-layout", []string{corpusDir}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EvalKernelLog(c.paths, corpusMatch, KernelOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

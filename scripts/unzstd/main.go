// Command unzstd decompresses zstd from standard input to standard output. It
// is built static by `make gpu-bundle` and carried with the bundle, because the
// GPU machine that unpacks the bundle may have no zstd of its own.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "unzstd:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	d, err := zstd.NewReader(in)
	if err != nil {
		return fmt.Errorf("reading zstd stream: %w", err)
	}
	defer d.Close()
	if _, err := io.Copy(out, d); err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	return nil
}

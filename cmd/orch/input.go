package main

import (
	"io"
	"os"
)

// openInput opens the file a command argument names, or stdin for "-".
func openInput(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	return os.Open(path)
}

package testservers

// WriteTLSFiles generates a test CA, a server certificate for 127.0.0.1
// and localhost, and a client certificate, as PEM files in dir.
func WriteTLSFiles(dir string) (TLSFiles, error) { return writeTLSFiles(dir) }

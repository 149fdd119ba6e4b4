package s3

func PartSizeFor(s *Store, hint int64) int64 { return s.partSizeFor(hint) }

func SetMaxParts(n int) (restore func()) {
	old := maxParts
	maxParts = n
	return func() { maxParts = old }
}

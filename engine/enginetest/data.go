package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// The sample data is generated the same way for both engines, from a fixed
// seed, so every fill of the same size is identical.

// awkwardText are strings a dump must carry unchanged: 4-byte UTF-8 (emoji,
// CJK extension B), combining and right-to-left scripts, quoting and escape
// characters, SQL-looking text and whitespace.
var awkwardText = []string{
	"Zoë Ångström",
	"李小龙",
	"山田太郎",
	"김민준",
	"Ελληνικά",
	"Привет, мир",
	"مرحبا بالعالم",
	"שלום",
	"मराठी",
	"emoji 🎉🚀💾",
	"🏳️‍🌈 zwj sequence",
	"𠜎𠜱𠝹 ext-B",
	"e\u0301 combining",
	"O'Brien \"quoted\"",
	`back\slash \n not a newline`,
	"tab\there\nnew line\r\ncrlf",
	"percent % underscore _",
	"semicolon; -- comment /* c */",
	"NULL",
	"",
	" leading and trailing spaces ",
	"\\N",
	"`backtick` $dollar$ $$",
}

var countries = []string{"DE", "JP", "CN", "KR", "GR", "RU", "EG", "IL", "IN", "US", "BR", "FR"}

var tagNames = []string{"vip", "新規", "🔥hot", "late-payer", "Ünïcödé", "b2b", "", "tag with spaces"}

type sampleCustomer struct {
	name     string
	email    any // nil (NULL), "" or an address
	country  string
	created  string // "YYYY-MM-DD hh:mm:ss.uuuuuu", no time zone
	birthday any    // nil or "YYYY-MM-DD"
	balance  string // decimal(15,4) as text
	score    any    // nil or float64
	active   bool
	notes    any // nil or text
	meta     any // nil or JSON text
}

type sampleOrder struct {
	customer int // 1-based index into the customers
	qty      int
	price    string // decimal(10,2)
	at       string // "YYYY-MM-DD hh:mm:ss.uuu", UTC
	status   string
}

type sampleBlob struct {
	id   int
	data any // nil or []byte (possibly empty)
}

type sampleTag struct {
	customer int
	tag      string
}

type sampleData struct {
	customers []sampleCustomer
	orders    []sampleOrder
	blobs     []sampleBlob
	tags      []sampleTag
	logs      []string // rows of a table without a primary key, with duplicates
}

var orderStatuses = []string{"new", "paid", "shipped", "cancelled"}

func newSampleData(rows int) *sampleData {
	if rows < 1 {
		rows = 1
	}
	rng := rand.New(rand.NewPCG(20240229, 42))
	d := &sampleData{}
	base := time.Date(2001, 2, 3, 4, 5, 6, 789012000, time.UTC)
	for i := range rows {
		c := sampleCustomer{
			name:    fmt.Sprintf("Customer %05d", i+1),
			country: countries[i%len(countries)],
			created: base.Add(time.Duration(i)*37*time.Minute + time.Duration(rng.IntN(1e6))*time.Microsecond).Format("2006-01-02 15:04:05.000000"),
			active:  i%3 != 0,
		}
		if i%4 == 1 {
			c.name = awkwardText[(i/4)%len(awkwardText)]
		}
		switch {
		case i%7 == 0:
			c.email = nil
		case i%11 == 0:
			c.email = ""
		default:
			c.email = fmt.Sprintf("user%d@example.com", i+1)
		}
		if i%6 != 0 {
			c.birthday = time.Date(1930+rng.IntN(90), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		}
		// Balances from -999999.9999 to 999999.9999, plus the extremes.
		cents := rng.Int64N(2*9999999999+1) - 9999999999
		c.balance = formatDecimal(cents, 4)
		switch i {
		case 2:
			c.balance = "99999999999.9999"
		case 3:
			c.balance = "-99999999999.9999"
		case 4:
			c.balance = "0.0000"
		case 5:
			c.balance = "-0.0001"
		}
		switch {
		case i%13 == 0:
			c.score = nil
		case i == 1:
			c.score = math.MaxFloat64
		case i == 2:
			c.score = math.SmallestNonzeroFloat64
		case i == 3:
			c.score = -0.1
		default:
			c.score = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
		}
		switch {
		case i%5 == 0:
			c.notes = nil
		case i%50 == 1:
			c.notes = strings.Repeat(awkwardText[i%len(awkwardText)]+" | ", 200+rng.IntN(300))
		default:
			c.notes = awkwardText[rng.IntN(len(awkwardText))]
		}
		if i%3 == 0 {
			c.meta = nil
		} else {
			c.meta = fmt.Sprintf(`{"n": %d, "label": "%s", "tags": ["a", "ü", "🎉"], "nested": {"ok": %t}}`, i, countries[i%len(countries)], i%2 == 0)
		}
		d.customers = append(d.customers, c)
	}

	orderBase := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		d.orders = append(d.orders, sampleOrder{
			customer: (i*31)%rows + 1,
			qty:      1 + rng.IntN(20),
			price:    formatDecimal(rng.Int64N(100000), 2),
			at:       orderBase.Add(time.Duration(i)*time.Minute + time.Duration(rng.IntN(60000))*time.Millisecond).Format("2006-01-02 15:04:05.000"),
			status:   orderStatuses[rng.IntN(len(orderStatuses))],
		})
	}

	nblobs := max(rows/2, 4)
	for i := range nblobs {
		b := sampleBlob{id: i + 1}
		switch {
		case i == 0:
			all := make([]byte, 256)
			for j := range all {
				all[j] = byte(j)
			}
			b.data = all
		case i == 1:
			big := make([]byte, 256<<10)
			for j := range big {
				big[j] = byte(rng.Uint32())
			}
			b.data = big
		case i == 2:
			b.data = []byte("\x00'\"\\\x1a\n\r\t%_ looks like SQL; DROP TABLE x;")
		case i%9 == 0:
			b.data = nil
		case i%9 == 1:
			b.data = []byte{}
		default:
			p := make([]byte, rng.IntN(2000))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			b.data = p
		}
		d.blobs = append(d.blobs, b)
	}

	for c := 1; c <= rows; c++ {
		for k := range c % 3 {
			d.tags = append(d.tags, sampleTag{customer: c, tag: tagNames[(c+k)%len(tagNames)]})
		}
	}

	for i := range max(rows/10, 3) {
		d.logs = append(d.logs, fmt.Sprintf("event %d: %s", i%7, awkwardText[i%5])) // repeats every 35 rows
	}
	return d
}

// formatDecimal formats v/10^scale with exactly scale decimals.
func formatDecimal(v int64, scale int) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	p := int64(math.Pow10(scale))
	return fmt.Sprintf("%s%d.%0*d", sign, v/p, scale, v%p)
}

// insertBatches calls insert for consecutive batches of at most size rows.
func insertBatches(n, size int, insert func(from, to int) error) error {
	for from := 0; from < n; from += size {
		if err := insert(from, min(from+size, n)); err != nil {
			return err
		}
	}
	return nil
}

// placeholders returns "(?, ?), (?, ?)" style lists: rows groups of cols
// placeholders, made by ph (given the 1-based argument number).
func placeholders(rows, cols int, ph func(n int) string) string {
	var b strings.Builder
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ph(n))
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

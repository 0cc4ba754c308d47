package dotenv

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Var
	}{
		{"empty file", "", nil},
		{"blank lines and comments only", "\n  \n# a comment\n   # indented\n\t\n", nil},
		{"plain", "A=1\nB=two words\n", []Var{{"A", "1", 1}, {"B", "two words", 2}}},
		{"no final newline", "A=1", []Var{{"A", "1", 1}}},
		{"empty values", "A=\nB=''\nC=\"\"\n", []Var{{"A", "", 1}, {"B", "", 2}, {"C", "", 3}}},
		{"export prefix", "export A=1\nexport\tB=2\n", []Var{{"A", "1", 1}, {"B", "2", 2}}},
		{"a variable named export", "export=1\n", []Var{{"export", "1", 1}}},
		{"blanks around = and the value are trimmed", "  A = 1  \nB=\t x\t\n", []Var{{"A", "1", 1}, {"B", "x", 2}}},
		{"comment after a blank ends an unquoted value", "A=1 # the port\nB=x\t#c\n", []Var{{"A", "1", 1}, {"B", "x", 2}}},
		{"a # inside a word is data", "A=a#b\nURL=http://h/#frag\n", []Var{{"A", "a#b", 1}, {"URL", "http://h/#frag", 2}}},
		{"a # right after = is data", "A=#1\n", []Var{{"A", "#1", 1}}},
		{"a # after = and a blank is a comment", "A= #1\n", []Var{{"A", "", 1}}},
		{"single quotes are literal", `A='x\ny $HOME "q" # not a comment'` + "\n", []Var{{"A", `x\ny $HOME "q" # not a comment`, 1}}},
		{"double quotes take escapes", `A="l1\nl2\t\"q\" \\ \r"` + "\n", []Var{{"A", "l1\nl2\t\"q\" \\ \r", 1}}},
		{"an unknown escape stays as written", `A="a\$b\x"` + "\n", []Var{{"A", `a\$b\x`, 1}}},
		{"no expansion", "A=$HOME ${PATH}\n", []Var{{"A", "$HOME ${PATH}", 1}}},
		{"comment after a closing quote", "A='x' # c\nB=\"y\"#c\n", []Var{{"A", "x", 1}, {"B", "y", 2}}},
		{"quoted value over several lines", "A=\"l1\nl2\"\nB='m1\nm2'\nC=3\n", []Var{{"A", "l1\nl2", 1}, {"B", "m1\nm2", 3}, {"C", "3", 5}}},
		{"CRLF line ends", "A=1\r\nB=\"x\"\r\n# c\r\nC=a b \r\n", []Var{{"A", "1", 1}, {"B", "x", 2}, {"C", "a b", 4}}},
		{"a UTF-8 byte order mark is skipped", "\xef\xbb\xbfA=1\n", []Var{{"A", "1", 1}}},
		{"a lone CR is data", "A=x\ry\n", []Var{{"A", "x\ry", 1}}},
		{"the later of a repeated key is last", "A=1\nA=2\n", []Var{{"A", "1", 1}, {"A", "2", 2}}},
		{"inner quotes of an unquoted value", `A=it's "ok"` + "\n", []Var{{"A", `it's "ok"`, 1}}},
		{"equals signs in the value", "A=k=v=w\n", []Var{{"A", "k=v=w", 1}}},
		{"*_FILE variables are plain variables", "DB_PASSWORD_FILE=/run/secrets/db\n", []Var{{"DB_PASSWORD_FILE", "/run/secrets/db", 1}}},
		{"underscore keys", "_A=1\na_9=2\n", []Var{{"_A", "1", 1}, {"a_9", "2", 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.doc), "app.env")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "hunter2"
	tests := []struct {
		name, doc, want string
	}{
		{"no =", "A=1\nB " + secret + "\n", "app.env:2: missing '='"},
		{"bare word", secret + "\n", "app.env:1: missing '='"},
		{"key starts with a digit", "1A=" + secret, "app.env:1: want KEY=VALUE"},
		{"key with a dash", "A-B=" + secret, "app.env:1: want KEY=VALUE"},
		{"empty key", "=" + secret, "app.env:1: want KEY=VALUE"},
		{"unclosed double quote", "A=1\nB=\"" + secret + "\nC=3\n", "app.env:2: variable B: the double quote is never closed"},
		{"unclosed single quote", "B='" + secret, "app.env:1: variable B: the single quote is never closed"},
		{"text after the closing quote", "B='" + secret + "'x\n", "app.env:1: variable B: unexpected text after the closing quote"},
		{"NUL in a value", "B=" + secret + "\x00\n", "app.env:1: variable B: the value contains a NUL byte"},
		{"the line of a multi-line value's key", "A=\"x\ny\"\nB=\"\n" + secret, "app.env:3: variable B: the double quote is never closed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "app.env")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %q, want it to start with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the value: %q", err)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("not an *Error: %T", err)
			}
		})
	}
}

func TestFormatRoundTrip(t *testing.T) {
	vars := []Var{
		{Key: "A", Value: ""}, {Key: "B", Value: "plain"}, {Key: "C", Value: " padded "},
		{Key: "D", Value: "#hash"}, {Key: "E", Value: "a #b"}, {Key: "F", Value: "l1\nl2\r\n"},
		{Key: "G", Value: `"q" 'q' \ `}, {Key: "H", Value: "'"}, {Key: "export", Value: "x"},
	}
	got, err := Parse(Format(vars), "")
	if err != nil {
		t.Fatalf("Parse(Format): %v\n%s", err, Format(vars))
	}
	if len(got) != len(vars) {
		t.Fatalf("got %d vars, want %d", len(got), len(vars))
	}
	for i := range vars {
		if got[i].Key != vars[i].Key || got[i].Value != vars[i].Value {
			t.Errorf("var %d: got %q=%q, want %q=%q", i, got[i].Key, got[i].Value, vars[i].Key, vars[i].Value)
		}
	}
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "app.env")
	if err := os.WriteFile(good, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.env")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.env")
	if err := os.WriteFile(big, []byte(strings.Repeat("#\n", MaxSize/2+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.env")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantErr string
	}{
		{"a regular file", good, ""},
		{"a symbolic link to one is followed on purpose", link, ""},
		{"a directory", dir, "not a regular file"},
		{"a FIFO is refused without blocking", fifo, "not a regular file"},
		{"a character device", "/dev/zero", "not a regular file"},
		{"over the size limit", big, "file too big"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := ReadFile(tc.path)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

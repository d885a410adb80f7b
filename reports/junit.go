package reports

import (
	"encoding/xml"
	"os"
	"path/filepath"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name    string        `xml:"name,attr"`
	Failure *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteSetupFailure writes dir/junit.xml with one failed case when verify fails before any spec runs
// (the lab cannot be read, a cluster does not answer), so CI always has an artifact (as cilium's
// check/junit.go does).
func WriteSetupFailure(dir string, err error) error {
	if mkErr := os.MkdirAll(dir, 0o700); mkErr != nil {
		return mkErr
	}
	doc := junitSuites{Tests: 1, Failures: 1, Suites: []junitSuite{{
		Name: "mclab conformance", Tests: 1, Failures: 1,
		Cases: []junitCase{{Name: "[setup] reach the lab under test", Failure: &junitFailure{Message: "inconclusive: " + err.Error(), Type: "setup", Text: err.Error()}}},
	}}}
	data, mErr := xml.MarshalIndent(doc, "", "  ")
	if mErr != nil {
		return mErr
	}
	return os.WriteFile(filepath.Join(dir, "junit.xml"), append([]byte(xml.Header), data...), 0o600)
}

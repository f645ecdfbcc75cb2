package fakeec2

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// issuedCreds are temporary credentials handed out by AssumeRole.
type issuedCreds struct {
	secret, token, role string
}

var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		AssumedRoleUser struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string `xml:"Arn"`
		} `xml:"AssumedRoleUser"`
		Credentials stsCredentials `xml:"Credentials"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// serveSTS answers STS AssumeRole (the only STS action the fake knows).
func (f *Fake) serveSTS(w http.ResponseWriter, who signer, action string, form url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	requestID := f.newRequestID()
	call := Call{Seq: len(f.calls) + 1, Action: "sts:" + action, Region: who.region, Time: f.cfg.Now(), RequestID: requestID, Role: who.role}
	fail := func(status int, code, msg string) {
		call.Code = code
		f.logCallLocked(call)
		var e stsErrorResponse
		e.Error.Type, e.Error.Code, e.Error.Message, e.RequestID = "Sender", code, msg, requestID
		writeXMLDoc(w, status, requestID, e)
	}
	if action != "AssumeRole" {
		fail(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", action, form.Get("Version")))
		return
	}
	arn, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	if !roleARN.MatchString(arn) || session == "" {
		fail(http.StatusBadRequest, "ValidationError", "RoleArn must be a role ARN and RoleSessionName must be set")
		return
	}
	if f.cfg.Roles != nil && !contains(f.cfg.Roles, arn) {
		fail(http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", f.cfg.AccessKeyID, arn))
		return
	}
	n := len(f.issued) + 1
	akid := fmt.Sprintf("ASIAFAKE%012d", n)
	creds := issuedCreds{secret: shortHash(akid+"/secret", 40), token: "fake-session-" + shortHash(akid+"/token", 32), role: arn}
	f.issued[akid] = creds
	f.logCallLocked(call)
	var res assumeRoleResponse
	res.Xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"
	name := arn[strings.LastIndex(arn, "/")+1:]
	res.Result.AssumedRoleUser.AssumedRoleID = "AROAFAKE" + shortHash(arn, 12) + ":" + session
	res.Result.AssumedRoleUser.Arn = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", ownerID, name, session)
	res.Result.Credentials = stsCredentials{AccessKeyID: akid, SecretAccessKey: creds.secret, SessionToken: creds.token,
		Expiration: f.cfg.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")}
	res.RequestID = requestID
	writeXMLDoc(w, http.StatusOK, requestID, res)
}

func writeXMLDoc(w http.ResponseWriter, status int, requestID string, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

package fakeec2

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// apiError is an EC2 error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, code, format, args...)
}

// request is one parsed API call.
type request struct {
	action    string
	region    string
	form      url.Values
	requestID string
	callIndex int // index in f.calls
	r         *http.Request
}

type handlerFunc func(f *Fake, req *request) (response, *apiError)

// response is a successful answer: a struct embedding responseBase whose
// other fields are the action's result members.
type response interface{ setRequestID(string) }

type responseBase struct {
	RequestID string `xml:"requestId"`
}

func (b *responseBase) setRequestID(id string) { b.RequestID = id }

// handler returns the implementation of action, or nil.
func handler(action string) handlerFunc {
	switch action {
	case "RunInstances":
		return (*Fake).runInstances
	case "DescribeInstances":
		return (*Fake).describeInstances
	case "TerminateInstances":
		return (*Fake).terminateInstances
	case "StartInstances":
		return (*Fake).startInstances
	case "DescribeImages":
		return (*Fake).describeImages
	case "DescribeSubnets":
		return (*Fake).describeSubnets
	case "CreateSecurityGroup":
		return (*Fake).createSecurityGroup
	case "DescribeSecurityGroups":
		return (*Fake).describeSecurityGroups
	case "AuthorizeSecurityGroupIngress":
		return (*Fake).authorizeSecurityGroupIngress
	case "DeleteSecurityGroup":
		return (*Fake).deleteSecurityGroup
	case "ImportKeyPair":
		return (*Fake).importKeyPair
	case "DescribeKeyPairs":
		return (*Fake).describeKeyPairs
	case "DeleteKeyPair":
		return (*Fake).deleteKeyPair
	case "CreateTags":
		return (*Fake).createTags
	case "DeleteTags":
		return (*Fake).deleteTags
	case "DescribeInstanceTypeOfferings":
		return (*Fake).describeInstanceTypeOfferings
	case "DescribeSpotPriceHistory":
		return (*Fake).describeSpotPriceHistory
	}
	return nil
}

func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		f.writeError(w, "", errf(http.StatusBadRequest, "InvalidRequest", "reading body: %v", err))
		return
	}
	who, err := f.verifySigV4(r, body)
	if err != nil {
		f.writeError(w, "", errf(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials: %v", err))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.writeError(w, "", badRequest("InvalidParameterValue", "malformed form body: %v", err))
		return
	}
	action := form.Get("Action")
	if who.service == "sts" {
		f.serveSTS(w, who, action, form)
		return
	}
	region := who.region
	if form.Get("Version") == "" {
		f.writeError(w, "", badRequest("MissingParameter", "The request must contain the parameter Version"))
		return
	}
	h := handler(action)
	if h == nil {
		f.writeError(w, "", badRequest("InvalidAction", "The action %s is not valid for this web service.", action))
		return
	}

	f.mu.Lock()
	req := &request{action: action, region: region, form: form, r: r}
	req.requestID = f.newRequestID()
	var out response
	var aerr *apiError
	if aerr = f.injectedLocked(action); aerr == nil {
		out, aerr = h(f, req)
	}
	call := Call{Seq: len(f.calls) + 1, Action: action, Region: region, Time: f.cfg.Now(), RequestID: req.requestID, Role: who.role}
	if aerr != nil {
		call.Code = aerr.code
	}
	if res, ok := out.(*runInstancesResponse); ok && len(res.Instances) > 0 {
		call.InstanceID = res.Instances[0].InstanceID
	}
	hold := action == "RunInstances" && aerr == nil && f.faults.HoldRunInstances
	call.Held = hold
	idx := f.logCallLocked(call)
	release := f.release
	f.mu.Unlock()
	if f.cfg.OnCall != nil {
		f.cfg.OnCall(call)
	}

	if hold {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		f.mu.Lock()
		f.calls[idx].Held = false
		f.mu.Unlock()
		if r.Context().Err() != nil {
			return // the client is gone: nothing to answer
		}
	}
	if aerr != nil {
		f.writeError(w, req.requestID, aerr)
		return
	}
	f.writeXML(w, action, req.requestID, out)
}

// logCallLocked appends call to the log, wakes waiters and returns its index.
func (f *Fake) logCallLocked(call Call) int {
	f.calls = append(f.calls, call)
	close(f.changed)
	f.changed = make(chan struct{})
	return len(f.calls) - 1
}

// injectedLocked returns the throttling or server fault to answer with, if any.
func (f *Fake) injectedLocked(action string) *apiError {
	if f.faults.Throttle > 0 && (f.faults.ThrottleAction == "" || f.faults.ThrottleAction == action) {
		f.faults.Throttle--
		return errf(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	}
	if f.faults.ServerErrors > 0 && (f.faults.ServerErrorAction == "" || f.faults.ServerErrorAction == action) {
		f.faults.ServerErrors--
		return errf(http.StatusInternalServerError, "InternalError", "An internal error has occurred")
	}
	return nil
}

func (f *Fake) newRequestID() string {
	f.seq++
	return fmt.Sprintf("%08x-fa4e-4ec2-8000-%012x", f.seq, f.seq)
}

type errorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []xmlError `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type xmlError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func (f *Fake) writeError(w http.ResponseWriter, requestID string, e *apiError) {
	if requestID == "" {
		f.mu.Lock()
		requestID = f.newRequestID()
		f.mu.Unlock()
	}
	b, err := xml.Marshal(errorResponse{Errors: []xmlError{{Code: e.code, Message: e.message}}, RequestID: requestID})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// writeXML encodes out as <ActionResponse xmlns=...>, requestId first.
func (f *Fake) writeXML(w http.ResponseWriter, action, requestID string, out response) {
	out.setRequestID(requestID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Local: action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlns}}}
	if err := xml.NewEncoder(&buf).EncodeElement(out, start); err != nil {
		f.writeError(w, requestID, errf(http.StatusInternalServerError, "InternalError", "encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", requestID)
	_, _ = w.Write(buf.Bytes())
}

// --- form helpers ---------------------------------------------------------

// list returns prefix.1, prefix.2, ... until one is missing.
func list(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + "." + strconv.Itoa(i)
		if _, ok := form[k]; !ok {
			return out
		}
		out = append(out, form.Get(k))
	}
}

// count returns how many prefix.N.* (or prefix.N) entries exist.
func count(form url.Values, prefix string) int {
	n := 0
	for k := range form {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		numStr, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(numStr); err == nil && i > n {
			n = i
		}
	}
	return n
}

type filter struct {
	name   string
	values []string
}

func filters(form url.Values) []filter {
	var out []filter
	for i := 1; i <= count(form, "Filter"); i++ {
		p := "Filter." + strconv.Itoa(i)
		out = append(out, filter{name: form.Get(p + ".Name"), values: list(form, p+".Value")})
	}
	return out
}

// tagSpecs returns resource type -> tags from TagSpecification.N.
func tagSpecs(form url.Values) (map[string]map[string]string, *apiError) {
	out := map[string]map[string]string{}
	for i := 1; i <= count(form, "TagSpecification"); i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt := form.Get(p + ".ResourceType")
		if rt == "" {
			return nil, badRequest("InvalidParameterValue", "TagSpecification %d has no ResourceType", i)
		}
		if _, dup := out[rt]; dup {
			return nil, badRequest("InvalidParameterValue", "TagSpecification for resource type %s given twice", rt)
		}
		tags := map[string]string{}
		for j := 1; j <= count(form, p+".Tag"); j++ {
			tp := p + ".Tag." + strconv.Itoa(j)
			k := form.Get(tp + ".Key")
			if k == "" || len(k) > 128 || strings.HasPrefix(strings.ToLower(k), "aws:") {
				return nil, badRequest("InvalidParameterValue", "Tag key %q is not valid", k)
			}
			v := form.Get(tp + ".Value")
			if len(v) > 256 {
				return nil, badRequest("InvalidParameterValue", "Tag value for key %q exceeds 256 characters", k)
			}
			tags[k] = v
		}
		out[rt] = tags
	}
	return out, nil
}

// matchWildcard matches EC2 filter values: * is any run, ? one character.
func matchWildcard(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if matchWildcard(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && matchWildcard(pattern[1:], s[1:])
	default:
		return s != "" && s[0] == pattern[0] && matchWildcard(pattern[1:], s[1:])
	}
}

func matchAny(values []string, s string) bool {
	for _, v := range values {
		if matchWildcard(v, s) {
			return true
		}
	}
	return false
}

// matchTags handles tag:Key and tag-key filters; ok is false for other names.
func matchTags(fl filter, tags map[string]string) (match, ok bool) {
	if k, isTag := strings.CutPrefix(fl.name, "tag:"); isTag {
		v, has := tags[k]
		return has && matchAny(fl.values, v), true
	}
	if fl.name == "tag-key" {
		for k := range tags {
			if matchAny(fl.values, k) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xmlTags(m map[string]string) []xmlTag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]xmlTag, 0, len(keys))
	for _, k := range keys {
		out = append(out, xmlTag{Key: k, Value: m[k]})
	}
	return out
}

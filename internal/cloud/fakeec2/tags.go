package fakeec2

import (
	"strconv"
	"strings"
)

// tagTarget returns the tag map of a resource id (instance, its root volume,
// security group or key pair) in region.
func (f *Fake) tagTarget(region, id string) (map[string]string, *apiError) {
	switch {
	case strings.HasPrefix(id, "i-"):
		if in := f.findInstance(id); in != nil && in.Region == region {
			return in.Tags, nil
		}
		return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	case strings.HasPrefix(id, "vol-"):
		for _, in := range f.instances {
			if in.RootVolumeID == id && in.Region == region && in.State != "terminated" {
				return in.VolumeTags, nil
			}
		}
		return nil, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	case strings.HasPrefix(id, "sg-"):
		if g := f.findGroup(region, id); g != nil {
			return g.Tags, nil
		}
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	case strings.HasPrefix(id, "key-"):
		for _, k := range f.keys {
			if k.ID == id && k.Region == region {
				return k.Tags, nil
			}
		}
		return nil, badRequest("InvalidKeyPairId.NotFound", "The key pair ID '%s' does not exist", id)
	}
	return nil, badRequest("InvalidID", "The ID '%s' is not valid", id)
}

type tagArg struct {
	key, value string
	hasValue   bool
}

func tagArgs(req *request) ([]string, []tagArg, *apiError) {
	ids := list(req.form, "ResourceId")
	if len(ids) == 0 {
		return nil, nil, badRequest("MissingParameter", "The request must contain the parameter ResourceId")
	}
	var tags []tagArg
	for i := 1; i <= count(req.form, "Tag"); i++ {
		p := "Tag." + strconv.Itoa(i)
		k := req.form.Get(p + ".Key")
		if k == "" || strings.HasPrefix(strings.ToLower(k), "aws:") || len(k) > 128 {
			return nil, nil, badRequest("InvalidParameterValue", "Tag key %q is not valid", k)
		}
		v, has := req.form[p+".Value"]
		t := tagArg{key: k, hasValue: has}
		if has {
			t.value = v[0]
		}
		if len(t.value) > 256 {
			return nil, nil, badRequest("InvalidParameterValue", "Tag value for key %q exceeds 256 characters", k)
		}
		tags = append(tags, t)
	}
	return ids, tags, nil
}

func (f *Fake) createTags(req *request) (response, *apiError) {
	ids, tags, aerr := tagArgs(req)
	if aerr != nil {
		return nil, aerr
	}
	var targets []map[string]string
	for _, id := range ids {
		m, aerr := f.tagTarget(req.region, id)
		if aerr != nil {
			return nil, aerr
		}
		targets = append(targets, m)
	}
	for _, m := range targets {
		for _, t := range tags {
			m[t.key] = t.value
		}
		if len(m) > 50 {
			return nil, badRequest("TagLimitExceeded", "The maximum number of tags for a resource is 50")
		}
	}
	return &returnResponse{Return: true}, nil
}

// deleteTags removes the keys (only when the value matches, if one is given).
func (f *Fake) deleteTags(req *request) (response, *apiError) {
	ids, tags, aerr := tagArgs(req)
	if aerr != nil {
		return nil, aerr
	}
	for _, id := range ids {
		m, aerr := f.tagTarget(req.region, id)
		if aerr != nil {
			return nil, aerr
		}
		for _, t := range tags {
			if v, ok := m[t.key]; ok && (!t.hasValue || v == t.value) {
				delete(m, t.key)
			}
		}
	}
	return &returnResponse{Return: true}, nil
}

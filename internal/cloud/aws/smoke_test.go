package aws

import (
	"github.com/hadron-ai/terraform-provider-hadron/internal/cloud/fakeec2"
	"testing"
)

func TestSmoke(t *testing.T) {
	b, srv := setup(t, fakeec2.Config{})
	ctx := testCtx(t)
	in, err := b.Create(ctx, baseSpec("smoke"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("%+v", in)
	t.Logf("%+v", srv.Instances())
	got, err := b.Get(ctx, in.ID)
	t.Logf("%+v %v", got, err)
	if err := b.Delete(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", srv.Calls())
}

package fedclaimspb

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestGeneratedCodeIsCurrent compiles fedclaims.proto with protoc, where installed,
// and checks that the committed Go code embeds the same descriptor: an edit to the
// .proto without `make proto` fails here.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed")
	}
	out := filepath.Join(t.TempDir(), "fedclaims.pb")
	cmd := exec.Command(protoc, "--descriptor_set_out="+out, "fedclaimspb/fedclaims.proto")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.File) != 1 {
		t.Fatalf("protoc returned %d files", len(set.File))
	}
	if got := protodesc.ToFileDescriptorProto(File_fedclaimspb_fedclaims_proto); !proto.Equal(got, set.File[0]) {
		t.Error("fedclaimspb/fedclaims.pb.go is stale: run make proto")
	}
}

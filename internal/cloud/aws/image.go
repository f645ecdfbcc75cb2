package aws

import (
	"context"
	"fmt"
	"sort"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The default image: the newest AWS Deep Learning Base GPU AMI (Ubuntu),
// NVIDIA driver, CUDA and Docker included, published by Amazon in every region.
const (
	DefaultImageOwner        = "amazon"
	DefaultImageNamePattern  = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
	DefaultImageArchitecture = "x86_64"
)

// Image is an AMI as the backend uses it.
type Image struct {
	ID             string
	Name           string
	CreationDate   time.Time
	RootDeviceName string
	Architecture   string
}

// DefaultImage returns the newest default image (DefaultImageNamePattern,
// owner amazon, x86_64, available) in region ("" is the backend's region).
func (b *Backend) DefaultImage(ctx context.Context, region string) (Image, error) {
	return defaultImage(ctx, b.client(region))
}

// LookupImage returns the AMI id in region ("" is the backend's region).
func (b *Backend) LookupImage(ctx context.Context, region, id string) (Image, error) {
	return lookupImage(ctx, b.client(region), id)
}

func defaultImage(ctx context.Context, c *ec2.Client) (Image, error) {
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners: []string{DefaultImageOwner},
		Filters: []types.Filter{
			filter("name", DefaultImageNamePattern),
			filter("state", "available"),
			filter("architecture", DefaultImageArchitecture),
		},
	})
	if err != nil {
		return Image{}, fmt.Errorf("finding the default image (%s): %w", DefaultImageNamePattern, err)
	}
	images := make([]Image, 0, len(out.Images))
	for i := range out.Images {
		images = append(images, toImage(&out.Images[i]))
	}
	if len(images) == 0 {
		return Image{}, fmt.Errorf("finding the default image: no %s image owned by %s named %q; set image_id", DefaultImageArchitecture, DefaultImageOwner, DefaultImageNamePattern)
	}
	sort.SliceStable(images, func(i, j int) bool { return images[i].CreationDate.After(images[j].CreationDate) })
	return images[0], nil
}

func lookupImage(ctx context.Context, c *ec2.Client, id string) (Image, error) {
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		return Image{}, fmt.Errorf("describing image (%s): %w", id, err)
	}
	if len(out.Images) == 0 {
		return Image{}, fmt.Errorf("describing image (%s): not found", id)
	}
	return toImage(&out.Images[0]), nil
}

func toImage(img *types.Image) Image {
	created, _ := time.Parse(time.RFC3339, awssdk.ToString(img.CreationDate))
	root := awssdk.ToString(img.RootDeviceName)
	if root == "" {
		root = "/dev/sda1"
	}
	return Image{
		ID:             awssdk.ToString(img.ImageId),
		Name:           awssdk.ToString(img.Name),
		CreationDate:   created,
		RootDeviceName: root,
		Architecture:   string(img.Architecture),
	}
}

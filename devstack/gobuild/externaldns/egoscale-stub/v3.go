// Package v3 stands in for the Exoscale API client, which the module proxy does not serve.
// It has what ExternalDNS's exoscale provider calls; every call fails: orgdns only runs the AWS provider.
package v3

import (
	"context"
	"errors"

	"github.com/exoscale/egoscale/v3/credentials"
)

var errNotBuilt = errors.New("the Exoscale provider is not built into this ExternalDNS")

type (
	UUID                             string
	Endpoint                         string
	OperationState                   string
	DNSDomainRecordType              string
	CreateDNSDomainRecordRequestType string
)

const OperationStateSuccess OperationState = "success"

type DNSDomain struct {
	ID          UUID
	UnicodeName string
}

type DNSDomainRecord struct {
	ID      UUID
	Name    string
	Type    DNSDomainRecordType
	Ttl     int64
	Content string
}

type CreateDNSDomainRecordRequest struct {
	Name    string
	Type    CreateDNSDomainRecordRequestType
	Content string
	Ttl     int64
}

type UpdateDNSDomainRecordRequest struct {
	Content string
	Ttl     int64
}

type ListDNSDomainsResponse struct{ DNSDomains []DNSDomain }

type ListDNSDomainRecordsResponse struct{ DNSDomainRecords []DNSDomainRecord }

type Operation struct{ State OperationState }

type Client struct{}

type ClientOpt func(*Client) error

func ClientOptWithEndpoint(Endpoint) ClientOpt { return func(*Client) error { return nil } }

func NewClient(*credentials.Credentials, ...ClientOpt) (*Client, error) { return nil, errNotBuilt }

func (*Client) ListDNSDomains(context.Context) (*ListDNSDomainsResponse, error) { return nil, errNotBuilt }

func (*Client) ListDNSDomainRecords(context.Context, UUID) (*ListDNSDomainRecordsResponse, error) {
	return nil, errNotBuilt
}

func (*Client) CreateDNSDomainRecord(context.Context, UUID, CreateDNSDomainRecordRequest) (*Operation, error) {
	return nil, errNotBuilt
}

func (*Client) DeleteDNSDomainRecord(context.Context, UUID, UUID) (*Operation, error) {
	return nil, errNotBuilt
}

func (*Client) UpdateDNSDomainRecord(context.Context, UUID, UUID, UpdateDNSDomainRecordRequest) (*Operation, error) {
	return nil, errNotBuilt
}

func (*Client) Wait(context.Context, *Operation, ...OperationState) (*Operation, error) { return nil, errNotBuilt }

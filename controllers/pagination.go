package controllers

import (
	"strconv"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
)

// Lists are paginated by page number: ?page= (from 1) and ?page_size=
// (1 to maxPageSize). Page numbers suit lists that people page through and
// that a client may jump around in; every list response says the total and
// the next page, so a client knows when to stop.
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// page is a validated page request.
type page struct {
	Number int
	Size   int
}

func (p page) offset() int { return (p.Number - 1) * p.Size }

// parsePage reads ?page= and ?page_size=; a value that is not a whole
// number in range is validation_failed naming the parameter.
func parsePage(c *gin.Context) (page, error) {
	p := page{Number: 1, Size: defaultPageSize}
	fields := map[string]string{}
	if v, ok := c.GetQuery("page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			fields["page"] = "must be a whole number from 1"
		}
		p.Number = n
	}
	if v, ok := c.GetQuery("page_size"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			fields["page_size"] = "must be a whole number from 1 to " + strconv.Itoa(maxPageSize)
		}
		p.Size = n
	}
	if len(fields) > 0 {
		return page{}, apierror.Validation(fields)
	}
	return p, nil
}

// pageInfo is the part of a list response that describes the page.
type pageInfo struct {
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
	Total    int64 `json:"total"`
	// NextPage is null on the last page.
	NextPage *int `json:"next_page"`
	// TotalCapped, on lists whose count is capped, tells that there are
	// more items than Total says.
	TotalCapped *bool `json:"total_capped,omitempty"`
}

func newPageInfo(p page, total int64) pageInfo {
	info := pageInfo{Page: p.Number, PageSize: p.Size, Total: total}
	if int64(p.Number)*int64(p.Size) < total {
		next := p.Number + 1
		info.NextPage = &next
	}
	return info
}

// newCappedPageInfo describes a page of a list whose count stops at
// capAt: counted is how many there are, counted up to capAt + 1, and more
// whether an item comes after the page (fetched one past it). Counting a
// long history in full would cost as much as it is long on every page.
func newCappedPageInfo(p page, counted, capAt int64, more bool) pageInfo {
	capped := counted > capAt
	info := pageInfo{Page: p.Number, PageSize: p.Size, Total: min(counted, capAt), TotalCapped: &capped}
	if more {
		next := p.Number + 1
		info.NextPage = &next
	}
	return info
}

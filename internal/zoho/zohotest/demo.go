package zohotest

// Fixed ids so documentation can print working curl commands against `receiver -dev`.
const (
	DemoDealID = "5725767000000524157"
	DemoLeadID = "5725767000000524201"
)

// Demo holds the ids SeedDemo created.
type Demo struct {
	OrgID          string // Books organization (= Credentials().OrgID)
	AccountID      string // CRM Account "Bowman & Co"
	ContactID      string // CRM Contact at Bowman & Co
	DealID         string // DemoDealID
	LeadID         string // DemoLeadID
	BooksContactID string // Books customer "Bowman & Co"
	BooksItemID    string // Books item "Annual licence", rate 1200
}

// SeedDemo stores a small, consistent demo data set in CRM and Books and returns its ids.
func (s *Server) SeedDemo() Demo {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Demo{OrgID: s.creds.OrgID}
	d.AccountID = s.crmInsertLocked("Accounts", map[string]any{"Account_Name": "Bowman & Co", "Phone": "+1 555 0100",
		"Website": "https://bowman.example", "Billing_City": "Springfield"})
	d.ContactID = s.crmInsertLocked("Contacts", map[string]any{"First_Name": "Dana", "Last_Name": "Bowman",
		"Email": "dana@bowman.example", "Account_Name": map[string]any{"id": d.AccountID, "name": "Bowman & Co"}})
	d.DealID = s.crmInsertLocked("Deals", map[string]any{"id": DemoDealID, "Deal_Name": "Bowman & Co – Annual licence",
		"Stage": "Closed Won", "Amount": 1200.0, "Closing_Date": s.now().Format("2006-01-02"),
		"Account_Name": map[string]any{"id": d.AccountID, "name": "Bowman & Co"},
		"Contact_Name": map[string]any{"id": d.ContactID, "name": "Dana Bowman"}})
	d.LeadID = s.crmInsertLocked("Leads", map[string]any{"id": DemoLeadID, "First_Name": "Patricia", "Last_Name": "Boyle",
		"Company": "Zylker", "Email": "p.boyle@zylker.example", "Lead_Status": "Not Contacted"})
	d.BooksContactID = s.booksInsertLocked(d.OrgID, "contacts", map[string]any{"contact_name": "Bowman & Co",
		"company_name": "Bowman & Co", "contact_type": "customer", "email": "dana@bowman.example"})
	d.BooksItemID = s.booksInsertLocked(d.OrgID, "items", map[string]any{"name": "Annual licence", "rate": 1200.0,
		"description": "One year licence", "product_type": "service"})
	return d
}
